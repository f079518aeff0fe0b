"""SLO math as pure functions: burn rates, error budget, alert policies and a backtest.

No Django, no ORM, no clock: every result is a function of the arguments. Event counts are integers
(good and total); objectives, thresholds and burn rates are Decimals, so 99.9% is exactly 0.999. Whether
a rule fires is decided in exact integer arithmetic, so a burn rate exactly at a threshold is never taken
for one just above it (in floats, 1.44% errors at a 99.9% objective give a burn rate of 14.399999999999986).

Vocabulary
- objective: share of events that must be good over the SLO window, strictly between 0 and 1.
- error budget: 1 − objective, the share of events allowed to be bad.
- burn rate over a window: (bad / total) ÷ (1 − objective). At 1 the budget lasts exactly the SLO window;
  at 14.4 a 30-day budget is gone in 50 hours. The highest possible burn rate (every event bad) is
  1 ÷ (1 − objective): 1000 at 99.9%.
- windows are whole minutes (SLIs are counted per minute). The window of L minutes ending at minute m
  covers minutes m − L + 1 … m, both included; minutes before the start of a series have no events.

No events
A window with no events has no burn rate: the functions return None. No data is neither good nor bad, so
it can neither raise an alert nor end one: while a rule's long or short window has no events the rule
keeps its state. A rule that was not firing does not start; a rule that was firing keeps firing until
events show the error rate has come down, so a service that goes silent during an outage does not
resolve its own page.

Firing and clearing
A rule fires when the burn rate over BOTH its long and its short window is strictly above its threshold
("exceeds", as in the SRE Workbook), and it clears as soon as either one is at or below the threshold.
There is no hysteresis band: the short window is what ends the alert quickly once the errors stop, and
the long window is what keeps a short spike from raising it. A burn rate exactly at the threshold does
not fire, and clears a firing rule.

Default policy and its scaling
The Google SRE Workbook's multiwindow, multi-burn-rate rules are given for a 30-day SLO: page at 14.4
over 1 h and 5 min, page at 6 over 6 h and 30 min, ticket at 3 over 1 day and 2 h, ticket at 1 over
3 days and 6 h. Each threshold is the burn rate at which a share of the whole window's budget is spent
within the long window: 14.4 × 1 h / 30 d = 2%, 6 × 6 h / 30 d = 5%, 3 × 1 d / 30 d = 10%, 1 × 3 d / 30 d = 10%.
For other SLO windows the rules keep the same windows and the same budget shares, so
threshold = share × SLO window ÷ long window (rounded to 4 decimal places):

    rule (long/short)   share   7 days   28 days   30 days
    page 1h/5m           2%      3.36     13.44     14.4
    page 6h/30m          5%      1.4       5.6       6
    ticket 1d/2h        10%      0.7       2.8       3
    ticket 3d/6h        10%      0.2333    0.9333    1
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction
from typing import Literal, NamedTuple

Severity = Literal["page", "ticket"]
SEVERITIES: tuple[Severity, ...] = ("page", "ticket")
MINUTE = timedelta(minutes=1)
SLO_WINDOWS: tuple[timedelta, ...] = (timedelta(days=7), timedelta(days=28), timedelta(days=30))
THRESHOLD_PLACES = 4  # scaled thresholds are rounded to this many decimal places
MAX_SERIES_MINUTES = 2 * 366 * 24 * 60  # a backtest holds one entry per minute: two years at most

_CTX = Context(prec=28, rounding=ROUND_HALF_EVEN)  # fixed context: results never depend on the caller's
_WINDOW_RE = re.compile(r"\s*([0-9]+)\s*(m|min|h|d)\s*", re.ASCII)
_INT_RE = re.compile(r"[+-]?[0-9]+", re.ASCII)
_WINDOW_UNITS = {"m": MINUTE, "min": MINUTE, "h": timedelta(hours=1), "d": timedelta(days=1)}


# --------------------------------------------------------------------------------------------------
# Numbers and windows
# --------------------------------------------------------------------------------------------------


def _exact(value: Decimal | int, what: str) -> Fraction:
    """The exact value of a Decimal or int; floats are refused (0.999 has no exact float)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{what} must be a Decimal or an int, not {type(value).__name__}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"{what} must be a finite number, got {value}")
    return Fraction(value)


def _decimal(value: Fraction) -> Decimal:
    return _CTX.divide(Decimal(value.numerator), Decimal(value.denominator))


def _objective(objective: Decimal) -> Fraction:
    exact = _exact(objective, "objective")
    if not 0 < exact < 1:
        raise ValueError(f"objective must be strictly between 0 and 1, got {objective}")
    return exact


def _check_counts(good: int, total: int) -> None:
    if good < 0 or total < 0:
        raise ValueError(f"event counts cannot be negative (good={good}, total={total})")
    if good > total:
        raise ValueError(f"good ({good}) cannot be more than total ({total})")


def format_number(value: Decimal | Fraction | int, places: int = THRESHOLD_PLACES) -> str:
    """A number for people: at most `places` decimals, no trailing zeros, never an exponent (1000, 14.4)."""
    scaled = round(Fraction(value) * 10**places)  # exact, half to even, whatever the size
    sign = "-" if scaled < 0 else ""
    whole, fraction = divmod(abs(scaled), 10**places)
    digits = str(fraction).rjust(places, "0").rstrip("0") if places > 0 else ""
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


def _as_typed(value: Decimal | int) -> str:
    """A user's number as written, without an exponent: 14.40 stays 14.40, 1E+3 becomes 1000."""
    return format(Decimal(value), "f")


def format_percent(value: Decimal | Fraction) -> str:
    """0.999 → "99.9%"."""
    return format_number(Fraction(value) * 100) + "%"


def window_minutes(window: timedelta | int) -> int:
    """A window as a whole number of minutes (at least 1)."""
    if isinstance(window, bool) or not isinstance(window, timedelta | int):
        raise TypeError(f"a window must be a timedelta or a number of minutes, not {type(window).__name__}")
    if isinstance(window, timedelta):
        if window % MINUTE:
            raise ValueError(f"a window must be a whole number of minutes, got {window}")
        minutes = window // MINUTE
    else:
        minutes = window
    if minutes < 1:
        raise ValueError(f"a window must be at least 1 minute, got {window}")
    return minutes


def parse_window(text: str) -> timedelta:
    """Parse "5m", "90min", "1h" or "30d" into a timedelta. Raises ValueError with what to write instead."""
    match = _WINDOW_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration: write a whole number followed by m, h or d, e.g. 5m, 1h or 30d")
    return int(match.group(1)) * _WINDOW_UNITS[match.group(2)]


def format_window(window: timedelta | int) -> str:
    """timedelta or minutes → the largest whole unit: "5m", "1h", "90m", "30d"."""
    minutes = window // MINUTE if isinstance(window, timedelta) else window
    if minutes and minutes % (24 * 60) == 0:
        return f"{minutes // (24 * 60)}d"
    if minutes and minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


# --------------------------------------------------------------------------------------------------
# Burn rate and budget
# --------------------------------------------------------------------------------------------------


def error_budget(objective: Decimal) -> Decimal:
    """1 − objective: the share of events allowed to be bad (0.001 at 99.9%)."""
    return _decimal(1 - _objective(objective))


def max_burn_rate(objective: Decimal) -> Decimal:
    """1 ÷ (1 − objective): the burn rate when every event is bad (1000 at 99.9%, 20 at 95%)."""
    return _decimal(1 / (1 - _objective(objective)))


def _burn(good: int, total: int, objective: Decimal) -> Fraction | None:
    _check_counts(good, total)
    budget = 1 - _objective(objective)
    if total == 0:
        return None
    return Fraction(total - good, total) / budget


def burn_rate(good: int, total: int, objective: Decimal) -> Decimal | None:
    """(bad / total) ÷ (1 − objective), or None when there are no events (no data is neither good nor bad)."""
    rate = _burn(good, total, objective)
    return None if rate is None else _decimal(rate)


def budget_consumed(good: int, total: int, objective: Decimal) -> Decimal | None:
    """Share of the error budget spent by these events, counted over the whole SLO window.

    The budget of N events is (1 − objective) × N bad events, so the share spent is the burn rate over the
    window: 0.5 is half the budget, above 1 the SLO is missed. None when the window has no events.
    """
    return burn_rate(good, total, objective)


def budget_remaining(good: int, total: int, objective: Decimal) -> Decimal | None:
    """1 − budget consumed, over the SLO window: 1 is untouched, 0 is exhausted, negative is overspent."""
    rate = _burn(good, total, objective)
    return None if rate is None else _decimal(1 - rate)


def _ratio(numerator: timedelta, denominator: timedelta) -> Fraction:
    """numerator ÷ denominator, exactly (timedelta / timedelta is a float)."""
    if denominator <= timedelta(0):
        raise ValueError(f"a window must be longer than 0, got {denominator}")
    unit = timedelta(microseconds=1)
    return Fraction(numerator // unit, denominator // unit)


def budget_share(rate: Decimal, duration: timedelta, slo_window: timedelta) -> Decimal:
    """Share of the SLO window's budget spent by burning at `rate` for `duration` (steady traffic):
    rate × duration ÷ SLO window. 14.4 for 1 h of a 30-day window spends 2%."""
    return _decimal(_exact(rate, "burn rate") * _ratio(duration, slo_window))


def threshold_for_share(share: Decimal, slo_window: timedelta, long_window: timedelta) -> Decimal:
    """The burn rate that spends `share` of the SLO window's budget within `long_window`:
    share × SLO window ÷ long window, rounded to THRESHOLD_PLACES decimals (2% of 30 d in 1 h → 14.4)."""
    exact = _exact(share, "share") * _ratio(slo_window, long_window)
    return Decimal(format_number(exact))


def time_to_exhaustion(remaining: Decimal, rate: Decimal | None, slo_window: timedelta) -> timedelta | None:
    """How long until the budget is gone when burning at `rate`: remaining × SLO window ÷ rate.

    A burn rate of 1 spends a whole budget in one SLO window, so a full budget at 14.4 on 30 days lasts
    50 h. Returns timedelta(0) when nothing remains, None when the rate is 0 or unknown (never at this rate).
    """
    if rate is None:
        return None
    left = _exact(remaining, "remaining budget")
    speed = _exact(rate, "burn rate")
    if speed < 0:
        raise ValueError(f"a burn rate cannot be negative, got {rate}")
    if left <= 0:
        return timedelta(0)
    if speed == 0:
        return None
    microseconds = left * (slo_window // timedelta(microseconds=1)) / speed
    return timedelta(microseconds=round(microseconds))


def time_to_exhaustion_now(
    *,
    window_good: int,
    window_total: int,
    recent_good: int,
    recent_total: int,
    objective: Decimal,
    slo_window: timedelta,
) -> timedelta | None:
    """Time to exhaustion from the budget remaining over the SLO window at the current burn rate (measured
    over a recent window, e.g. the last hour). None when either window has no events or nothing burns."""
    remaining = budget_remaining(window_good, window_total, objective)
    rate = burn_rate(recent_good, recent_total, objective)
    if remaining is None:
        return None
    return time_to_exhaustion(remaining, rate, slo_window)


# --------------------------------------------------------------------------------------------------
# Alert policy
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertRule:
    """Fire when the burn rate exceeds `burn_rate_threshold` over both `long_window` and `short_window`."""

    severity: Severity
    burn_rate_threshold: Decimal
    long_window: timedelta
    short_window: timedelta

    @classmethod
    def parse(cls, severity: Severity, threshold: str, long_window: str, short_window: str) -> AlertRule:
        """AlertRule.parse("page", "14.4", "1h", "5m")."""
        return cls(severity, Decimal(threshold), parse_window(long_window), parse_window(short_window))

    @property
    def long_minutes(self) -> int:
        return window_minutes(self.long_window)

    @property
    def short_minutes(self) -> int:
        return window_minutes(self.short_window)

    def describe(self) -> str:
        return (
            f"{self.severity} when the burn rate exceeds {format_number(self.burn_rate_threshold)} "
            f"over {format_window(self.long_window)} and over {format_window(self.short_window)}"
        )


@dataclass(frozen=True)
class RuleTemplate:
    """A workbook rule as the share of the SLO window's budget spent within its long window."""

    severity: Severity
    budget_share: Decimal
    long_window: timedelta
    short_window: timedelta


WORKBOOK_RULES: tuple[RuleTemplate, ...] = (
    RuleTemplate("page", Decimal("0.02"), timedelta(hours=1), timedelta(minutes=5)),
    RuleTemplate("page", Decimal("0.05"), timedelta(hours=6), timedelta(minutes=30)),
    RuleTemplate("ticket", Decimal("0.10"), timedelta(days=1), timedelta(hours=2)),
    RuleTemplate("ticket", Decimal("0.10"), timedelta(days=3), timedelta(hours=6)),
)


def default_policy(slo_window: timedelta = timedelta(days=30)) -> tuple[AlertRule, ...]:
    """The workbook's four rules with thresholds scaled to `slo_window` (same windows, same budget shares)."""
    rules = []
    for template in WORKBOOK_RULES:
        if template.long_window > slo_window:
            raise ValueError(f"the default policy needs an SLO window of at least 3d, got {format_window(slo_window)}")
        threshold = threshold_for_share(template.budget_share, slo_window, template.long_window)
        rules.append(AlertRule(template.severity, threshold, template.long_window, template.short_window))
    return tuple(rules)


# --------------------------------------------------------------------------------------------------
# Validation: every error in words, keyed by field
# --------------------------------------------------------------------------------------------------


def objective_errors(objective: object) -> list[str]:
    """Why an objective is not usable ([] when it is)."""
    if (
        isinstance(objective, bool)
        or not isinstance(objective, Decimal | int)
        or (isinstance(objective, Decimal) and not objective.is_finite())
    ):
        return ["The objective must be a number between 0 and 1, e.g. 0.999 for 99.9%."]
    if 1 < objective <= 100:
        guess = Fraction(objective) / 100
        return [
            f"The objective is a fraction between 0 and 1, not a percentage: "
            f"did you mean {format_number(guess, 10)} ({format_percent(guess)})?"
        ]
    if objective >= 1:
        return [
            f"The objective must be below 1 (100%), got {objective}: at 100% there is no error budget, "
            "so the first bad event would exhaust it and no burn rate can be computed. Use e.g. 0.999 for 99.9%."
        ]
    if objective <= 0:
        return [
            f"The objective must be above 0, got {objective}: it is the share of events that must be good, "
            "e.g. 0.95 for 95%."
        ]
    return []


def slo_window_errors(slo_window: object) -> list[str]:
    """Why an SLO window is not usable ([] when it is): it must be 7, 28 or 30 days."""
    if not isinstance(slo_window, timedelta) or slo_window not in SLO_WINDOWS:
        got = format_window(slo_window) if isinstance(slo_window, timedelta) else repr(slo_window)
        return [f"The SLO window must be 7, 28 or 30 days (7d, 28d or 30d), got {got}."]
    return []


def _window_errors(label: str, window: object) -> list[str]:
    if not isinstance(window, timedelta):
        return [f"The {label} must be a duration such as 5m, 1h or 3d."]
    if window < MINUTE:
        return [f"The {label} must be at least 1 minute: the SLIs are counted per minute."]
    if window % MINUTE:
        return [f"The {label} must be a whole number of minutes, got {window}: the SLIs are counted per minute."]
    return []


def rule_errors(rule: AlertRule, *, objective: object = None, slo_window: object = None) -> dict[str, list[str]]:
    """Why a rule cannot work, keyed by its field names ({} when it can).

    The objective and SLO window are checked only when they are valid themselves (their own errors are
    reported by objective_errors and slo_window_errors).
    """
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if rule.severity not in SEVERITIES:
        add(
            "severity",
            f'The severity must be "page" (wake someone up now) or "ticket" (handle it in working hours), '
            f"got {rule.severity!r}.",
        )

    threshold = rule.burn_rate_threshold
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, Decimal | int)
        or (isinstance(threshold, Decimal) and not threshold.is_finite())
    ):
        add("burn_rate_threshold", "The burn-rate threshold must be a number, e.g. 14.4.")
    elif threshold <= 0:
        add(
            "burn_rate_threshold",
            f"The burn-rate threshold must be above 0, got {_as_typed(threshold)}: a burn rate is never "
            "negative and is 0 only when no event is bad, so this rule would fire on the first bad event. "
            "1 means spending the budget exactly over the SLO window; the default page rule uses 14.4.",
        )
    elif not objective_errors(objective):
        assert isinstance(objective, Decimal | int)
        highest = 1 / (1 - Fraction(objective))
        if Fraction(threshold) >= highest:
            add(
                "burn_rate_threshold",
                f"At a {format_percent(Fraction(objective))} objective the error budget is "
                f"{format_percent(1 - Fraction(objective))} of events, so the highest possible burn rate "
                f"(every event bad) is {format_number(highest, 2)}; a threshold of {_as_typed(threshold)} "
                f"can never be exceeded and this rule would never fire. Use a threshold below "
                f"{format_number(highest, 2)}.",
            )

    long_errors = _window_errors("long window", rule.long_window)
    short_errors = _window_errors("short window", rule.short_window)
    for message in long_errors:
        add("long_window", message)
    for message in short_errors:
        add("short_window", message)
    if not long_errors and not slo_window_errors(slo_window):
        assert isinstance(slo_window, timedelta)
        if rule.long_window > slo_window:
            add(
                "long_window",
                f"The long window ({format_window(rule.long_window)}) is longer than the SLO window "
                f"({format_window(slo_window)}): it would count events the SLO no longer counts. "
                f"Use at most {format_window(slo_window)}.",
            )
    if not long_errors and not short_errors and rule.short_window >= rule.long_window:
        add(
            "short_window",
            f"The short window ({format_window(rule.short_window)}) must be shorter than the long window "
            f"({format_window(rule.long_window)}): it is there to end the alert soon after the errors stop. "
            f"The usual choice is 1/12 of the long window "
            f"({format_window(max(1, window_minutes(rule.long_window) // 12))} for {format_window(rule.long_window)}).",
        )
    return errors


def validate_policy(objective: object, slo_window: object, rules: Sequence[AlertRule]) -> dict[str, list[str]]:
    """Every error of an SLO's objective, window and alert rules, keyed by field: "objective", "window",
    and "rules.<index>.<field>" for a rule's fields (the shape of Django's form.errors and DRF's errors).
    An empty dict means the policy is valid."""
    errors: dict[str, list[str]] = {}
    if messages := objective_errors(objective):
        errors["objective"] = messages
    if messages := slo_window_errors(slo_window):
        errors["window"] = messages
    for index, rule in enumerate(rules):
        for field, field_messages in rule_errors(rule, objective=objective, slo_window=slo_window).items():
            errors[f"rules.{index}.{field}"] = field_messages
    return errors


# --------------------------------------------------------------------------------------------------
# Rule evaluation
# --------------------------------------------------------------------------------------------------


class Counts(NamedTuple):
    good: int
    total: int

    @property
    def bad(self) -> int:
        return self.total - self.good


class PrefixSums:
    """Running totals of a per-minute series (index = minute offset, value = (good, total)): the counts of
    any window in O(1), so sliding every window over n minutes costs O(n)."""

    def __init__(self, series: Iterable[tuple[int, int]]) -> None:
        good_sums = [0]
        total_sums = [0]
        good_sum = total_sum = 0
        for minute, (good, total) in enumerate(series):
            if good < 0 or total < 0 or good > total:
                raise ValueError(f"minute {minute}: need 0 ≤ good ≤ total, got good={good}, total={total}")
            good_sum += good
            total_sum += total
            good_sums.append(good_sum)
            total_sums.append(total_sum)
        self.good = good_sums
        self.total = total_sums

    def __len__(self) -> int:
        return len(self.total) - 1

    def window(self, end: int, minutes: int) -> Counts:
        """Counts of the `minutes` minutes ending at minute `end` (included); earlier than minute 0 is empty."""
        if not 0 <= end < len(self):
            raise IndexError(f"minute {end} is outside the series (0…{len(self) - 1})")
        if minutes < 1:
            raise ValueError(f"a window must be at least 1 minute, got {minutes}")
        start = max(0, end + 1 - minutes)
        return Counts(self.good[end + 1] - self.good[start], self.total[end + 1] - self.total[start])


def _limit(threshold: Decimal, objective: Decimal) -> tuple[int, int]:
    """(p, q) with p / q = threshold × (1 − objective): a window exceeds the threshold iff bad × q > p × total."""
    limit = _exact(threshold, "burn-rate threshold") * (1 - _objective(objective))
    return limit.numerator, limit.denominator


@dataclass(frozen=True)
class RuleEvaluation:
    """A rule's state at one minute and the burn rates that decided it (None: that window had no events)."""

    rule: AlertRule
    firing: bool
    long_burn_rate: Decimal | None
    short_burn_rate: Decimal | None


def evaluate_rule(
    rule: AlertRule, objective: Decimal, long: Counts, short: Counts, *, firing: bool = False
) -> RuleEvaluation:
    """The rule's new state from the counts of its two windows and its previous state (`firing`).

    Fires when both burn rates exceed the threshold, clears when either is at or below it; when either
    window has no events the previous state is kept (no data cannot raise or end an alert).
    """
    p, q = _limit(rule.burn_rate_threshold, objective)
    long_rate = burn_rate(long.good, long.total, objective)
    short_rate = burn_rate(short.good, short.total, objective)
    if long.total and short.total:
        firing = long.bad * q > p * long.total and short.bad * q > p * short.total
    return RuleEvaluation(rule, firing, long_rate, short_rate)


def burn_rate_series(
    series: Sequence[tuple[int, int]] | PrefixSums, window: timedelta | int, objective: Decimal, *, start: int = 0
) -> list[float | None]:
    """Burn rate over `window` ending at each minute from minute `start` on, as floats for charts (None where it
    has no events). The minutes before `start` still count in the windows: they are history, not display."""
    sums = series if isinstance(series, PrefixSums) else PrefixSums(series)
    minutes = window_minutes(window)
    budget = float(1 - _objective(objective))
    good, total = sums.good, sums.total
    rates: list[float | None] = []
    for end in range(max(start, 0) + 1, len(sums) + 1):
        start = max(0, end - minutes)
        count = total[end] - total[start]
        bad = count - (good[end] - good[start])
        rates.append(bad / count / budget if count else None)
    return rates


# --------------------------------------------------------------------------------------------------
# Backtest
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertInterval:
    """One alert a rule would have raised: minutes are offsets in the series; cleared_at is None when the
    rule was still firing at the last minute. The alert covers fired_at … cleared_at − 1."""

    severity: Severity
    burn_rate_threshold: Decimal
    long_window: int
    short_window: int
    fired_at: int
    cleared_at: int | None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: the threshold as a JSON number, windows and times in minutes."""
        return {
            "severity": self.severity,
            "burn_rate_threshold": float(self.burn_rate_threshold),
            "long_window": self.long_window,
            "short_window": self.short_window,
            "fired_at": self.fired_at,
            "cleared_at": self.cleared_at,
        }


def _replay(sums: PrefixSums, rule: AlertRule, objective: Decimal) -> list[AlertInterval]:
    p, q = _limit(rule.burn_rate_threshold, objective)
    long_minutes, short_minutes = rule.long_minutes, rule.short_minutes
    good, total = sums.good, sums.total
    intervals: list[AlertInterval] = []
    firing = False
    fired_at = 0
    for end in range(1, len(sums) + 1):
        long_start = end - long_minutes if end > long_minutes else 0
        short_start = end - short_minutes if end > short_minutes else 0
        long_total = total[end] - total[long_start]
        short_total = total[end] - total[short_start]
        if not long_total or not short_total:
            continue  # no events: the state is kept
        now = (long_total - good[end] + good[long_start]) * q > p * long_total and (
            short_total - good[end] + good[short_start]
        ) * q > p * short_total
        if now and not firing:
            fired_at = end - 1
        elif firing and not now:
            intervals.append(_interval(rule, long_minutes, short_minutes, fired_at, end - 1))
        firing = now
    if firing:
        intervals.append(_interval(rule, long_minutes, short_minutes, fired_at, None))
    return intervals


def _interval(rule: AlertRule, long: int, short: int, fired_at: int, cleared_at: int | None) -> AlertInterval:
    return AlertInterval(rule.severity, rule.burn_rate_threshold, long, short, fired_at, cleared_at)


def backtest(
    series: Sequence[tuple[int, int]] | PrefixSums, objective: Decimal, rules: Sequence[AlertRule]
) -> list[AlertInterval]:
    """Replay a per-minute series (index = minute offset, value = (good, total); (0, 0) for a minute
    without events) through the rules, evaluating every minute from 0 to the last. Returns every alert
    interval, ordered by fired_at, then by the rules' order. O(minutes × rules).

    Raises ValueError for an objective outside (0, 1), a window that is not a whole number of minutes or
    a bad count. It does not reject a policy that validate_policy would: a rule that can never fire
    simply produces no interval.
    """
    sums = series if isinstance(series, PrefixSums) else PrefixSums(series)
    _objective(objective)
    intervals = [interval for rule in rules for interval in _replay(sums, rule, objective)]
    return sorted(intervals, key=lambda interval: interval.fired_at)  # stable: ties keep the rules' order


# --------------------------------------------------------------------------------------------------
# Series input: CSV with the columns minute,good,total
# --------------------------------------------------------------------------------------------------

SERIES_COLUMNS = ("minute", "good", "total")


def parse_series_csv(lines: Iterable[str]) -> list[tuple[int, int]]:
    """Read a CSV with the columns minute,good,total (minute: integer offset from the start; other columns
    are ignored) into a dense per-minute series; a minute without a line has no events.

    Raises ValueError with the line number and what to fix: a missing column, a value that is not a whole
    number, a negative count, good above total, a minute given twice, no data lines.
    """
    reader = csv.reader(lines)
    header: list[str] | None = None
    for row in reader:
        if any(cell.strip() for cell in row):
            header = [cell.strip().lstrip("\ufeff").lower() for cell in row]
            break
    if header is None:
        raise ValueError("The CSV is empty: expected a header line minute,good,total and one line per minute.")
    missing = [name for name in SERIES_COLUMNS if name not in header]
    if missing:
        raise ValueError(
            f"line {reader.line_num}: the header must name the columns minute, good and total; "
            f"missing: {', '.join(missing)} (the header is: {','.join(header)})."
        )
    columns = {name: header.index(name) for name in SERIES_COLUMNS}
    counts: dict[int, tuple[int, int]] = {}
    first_line: dict[int, int] = {}
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        line = reader.line_num
        if len(row) != len(header):
            raise ValueError(f"line {line}: {len(row)} values, but the header has {len(header)} columns.")
        values = {}
        for name, index in columns.items():
            text = row[index].strip()
            if not _INT_RE.fullmatch(text):
                raise ValueError(f"line {line}: {name} must be a whole number, got {text!r}.")
            value = int(text)
            if value < 0:
                raise ValueError(f"line {line}: {name} cannot be negative, got {value}.")
            values[name] = value
        minute, good, total = values["minute"], values["good"], values["total"]
        if good > total:
            raise ValueError(
                f"line {line}: good ({good}) is more than total ({total}): good events are counted among all events."
            )
        if minute >= MAX_SERIES_MINUTES:
            raise ValueError(
                f"line {line}: minute {minute} is too far from the start: a backtest covers at most "
                f"{MAX_SERIES_MINUTES} minutes (two years)."
            )
        if minute in first_line:
            raise ValueError(
                f"line {line}: minute {minute} appears twice (first on line {first_line[minute]}): "
                "give one line per minute."
            )
        first_line[minute] = line
        counts[minute] = (good, total)
    if not counts:
        raise ValueError("The CSV has a header but no data lines: give one line per minute.")
    series = [(0, 0)] * (max(counts) + 1)
    for minute, pair in counts.items():
        series[minute] = pair
    return series
