"""An SLO's alert policy as stored (a JSON list of rule rows, strings as typed) and as burn.AlertRules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from slos import burn
from slos.burn import AlertRule


def policy_rules(policy: Sequence[Mapping[str, str]]) -> list[AlertRule]:
    """The stored policy (strings as typed) as AlertRules; it was validated when saved."""
    return [
        AlertRule.parse(r["severity"], r["burn_rate_threshold"], r["long_window"], r["short_window"])  # type: ignore[arg-type]
        for r in policy
    ]


def policy_json(rules: Iterable[AlertRule]) -> list[dict[str, str]]:
    return [
        {
            "severity": rule.severity,
            "burn_rate_threshold": burn.format_number(rule.burn_rate_threshold),
            "long_window": burn.format_window(rule.long_window),
            "short_window": burn.format_window(rule.short_window),
        }
        for rule in rules
    ]


def rule_key(rule: AlertRule) -> str:
    """Stable identity of a rule within its SLO: the same rule keeps its state across policy edits."""
    return (
        f"{rule.severity}:{burn.format_number(rule.burn_rate_threshold)}:"
        f"{burn.format_window(rule.long_window)}:{burn.format_window(rule.short_window)}"
    )
