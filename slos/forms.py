"""The SLO and channel forms. The REST API validates through the same forms, so a form and an API client get
the same errors, in words that say what to fix. Alert-rule errors are keyed "rules.<index>.<field>"."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.contrib.auth.models import User
from pydantic import ValidationError as PydanticError

from accounts.models import Project
from evals.evaluators.registry import REGISTRY as EVALUATORS
from rollups.selectors import trace_facets
from slos import burn
from slos.models import SLO, Channel, Comparator, SliKind
from slos.policy import policy_json, rule_key
from slos.transports import REGISTRY as TRANSPORTS
from slos.transports import unseal_secrets
from sre4ai_web.lib import typed_form
from sre4ai_web.lib.validation import pydantic_message

MAX_RULES = 10
RULE_FIELDS = ("severity", "burn_rate_threshold", "long_window", "short_window")
# The form offers "a score's value against a threshold" as a kind of its own, so the comparator is asked for only
# then; it is stored as a score SLI with that comparator (the API may also send sli_kind=score with a comparator).
SCORE_THRESHOLD = "score_threshold"
SLI_CHOICES = [
    (SliKind.SCORE.value, "A score passes (its evaluator's verdict)"),
    (SCORE_THRESHOLD, "A score's value meets a threshold"),
    *((kind.value, kind.label) for kind in SliKind if kind != SliKind.SCORE),
]
THRESHOLD_COMPARATORS = [(c.value, c.label) for c in Comparator if c != Comparator.PASS]
_PERCENT_RE = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*%\s*")


def parse_objective(text: str) -> Decimal:
    """ "99.5%" → 0.995 and "0.995" → 0.995, exactly. Raises ValueError saying what to write."""
    match = _PERCENT_RE.fullmatch(text)
    try:
        value = Decimal(match.group(1)) / 100 if match else Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(  # noqa: B904 - the decimal error adds nothing for a person
            f"{text!r} is not a number: write the objective as a percentage (99.5%) or a fraction (0.995)."
        )
    if match and value >= 1:  # a percentage is read as written: 150% is not 1.5%
        raise ValueError(
            f"{text.strip()} is not below 100%: the objective is the share of events that must be good, e.g. 99.5%."
        )
    if messages := burn.objective_errors(value):
        raise ValueError(" ".join(messages))
    if value.as_tuple().exponent < -10:  # type: ignore[operator]
        raise ValueError("The objective can have at most 10 decimal places (as a fraction), e.g. 0.99999.")
    return value.normalize()


def objective_text(objective: Decimal) -> str:
    """0.995 → "99.5%", exactly as stored (for the edit form)."""
    return format((objective * 100).normalize(), "f") + "%"


def default_rule_rows(window_days: int) -> list[dict[str, str]]:
    """The default policy for a window, as rule rows (the starting point of a custom policy)."""
    return policy_json(burn.default_policy(timedelta(days=window_days)))


CHANNEL_EXAMPLES: dict[str, dict[str, Any]] = {
    "webhook": {
        "url": "https://hooks.example.com/sre4ai",
        "secret": "a-long-random-shared-secret",
        "severities": ["page"],
    },
    "slack": {"webhook_url": "https://hooks.slack.com/services/T000/B000/XXXX"},
    "pagerduty": {"routing_key": "0123456789abcdef0123456789abcdef"},
    "email": {"to": ["oncall@example.com"], "severities": ["page", "ticket"]},
}


def channel_examples() -> dict[str, str]:
    """An example settings object per channel type, shown beside the channel form."""
    return {name: json.dumps(CHANNEL_EXAMPLES.get(name, {})) for name in TRANSPORTS}


class SloForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="Shown in alerts, e.g. “Answers are grounded”.")
    service = forms.CharField(max_length=200)
    environment = forms.CharField(max_length=64, required=False, help_text="Empty: every environment.")
    route = forms.CharField(max_length=500, required=False, help_text="Only traces with this name (route).")
    model = forms.CharField(max_length=200, required=False, help_text="Only traces that used this model.")
    sli_kind = forms.ChoiceField(label="A trace is good when", choices=SLI_CHOICES)
    evaluator = forms.CharField(max_length=100, required=False, label="Score")
    # "pass" is accepted (API clients send it) but not offered: the form's own "a score passes" kind means it.
    comparator = forms.ChoiceField(choices=[("", "—"), *Comparator.choices], required=False)
    threshold = forms.DecimalField(
        max_digits=20,
        decimal_places=10,
        required=False,
        help_text="Score threshold, latency limit in ms, or cost limit in $.",
    )
    objective = forms.CharField(max_length=20, help_text="Share of good events: 99.5% or 0.995.")
    window_days = forms.TypedChoiceField(
        label="Window", coerce=int, initial=30, choices=[(7, "7 days"), (28, "28 days"), (30, "30 days")]
    )
    policy_mode = forms.ChoiceField(
        label="Alert policy",
        initial="default",
        choices=[
            ("default", "Default (SRE Workbook, scaled to the window)"),
            ("custom", "Custom rules"),
        ],
    )
    runbook = forms.CharField(
        required=False,
        max_length=20000,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="Markdown. Shown on the SLO and incident pages.",
    )
    owner = forms.ModelChoiceField(queryset=User.objects.none(), required=False, to_field_name="username")
    channels = forms.ModelMultipleChoiceField(queryset=Channel.objects.none(), required=False, to_field_name="name")

    def __init__(
        self,
        *args: Any,
        project: Project,
        instance: SLO | None = None,
        rules: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.project, self.instance = project, instance
        self.rules_input = rules or []
        self.rule_errors: dict[str, list[str]] = {}
        self.fields["owner"].queryset = User.objects.filter(memberships__project=project)  # type: ignore[attr-defined]
        self.fields["channels"].queryset = Channel.objects.filter(project=project)  # type: ignore[attr-defined]
        self.fields["comparator"].widget.choices = [("", "—"), *THRESHOLD_COMPARATORS]
        self.facets = trace_facets(project=project)

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        taken = SLO.objects.filter(project=self.project, name=name)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(f"This project already has an SLO named “{name}”: choose another name.")
        return name

    def clean_service(self) -> str:
        service: str = self.cleaned_data["service"]
        known = self.facets["services"]
        if service not in known and not (self.instance and self.instance.service == service):
            listed = ", ".join(known[:20]) or "none yet"
            raise forms.ValidationError(
                f"No traces from a service named “{service}” in this project: check the spelling "
                f"(services seen: {listed}). Send a trace first, then define its SLO."
            )
        return service

    def clean_objective(self) -> Decimal:
        try:
            return parse_objective(self.cleaned_data["objective"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        self._clean_sli(data)
        objective, days = data.get("objective"), data.get("window_days")
        window = timedelta(days=days) if days is not None else None
        if data.get("policy_mode") == "custom":
            # Every rule error at once, also while the objective or window is wrong: checks that need those wait
            # for them (burn.rule_errors), the others are reported now rather than on the next submit.
            rules = self._parse_rules()
            for index, rule in rules.items():
                for field, messages in burn.rule_errors(rule, objective=objective, slo_window=window).items():
                    self.rule_errors.setdefault(f"rules.{index}.{field}", messages)  # a reading error says more
            self._refuse_repeats(rules)
            if not self.rule_errors:
                data["policy"] = policy_json(list(rules.values()))
        elif window is not None:
            data["policy"] = policy_json(burn.default_policy(window))
        if self.rule_errors:
            self.add_error(None, "Some alert rules cannot work: see the errors beside them.")
        return data

    def _clean_sli(self, data: dict[str, Any]) -> None:
        kind, threshold, comparator = data.get("sli_kind"), data.get("threshold"), data.get("comparator") or ""
        compares = False  # the score's value against a threshold, not its verdict
        if kind == SCORE_THRESHOLD:
            kind = data["sli_kind"] = SliKind.SCORE
            compares = True
            if comparator in ("", Comparator.PASS):
                self.add_error(
                    "comparator", "Choose how the score's value is compared with the threshold: ≥, >, ≤ or <."
                )
        elif kind == SliKind.SCORE:
            compares = comparator not in ("", Comparator.PASS)  # an API client may send score with "≥"
            if not comparator:
                data["comparator"] = Comparator.PASS
        if kind == SliKind.SCORE:
            evaluator = data.get("evaluator", "").strip()
            known = sorted(set(EVALUATORS) | set(self.facets["score_names"]))
            if not evaluator:
                self.add_error("evaluator", f"Name the score this SLO judges, one of: {', '.join(known)}.")
            elif evaluator not in known:
                self.add_error(
                    "evaluator", f"No score named “{evaluator}” in this project: use one of {', '.join(known)}."
                )
            if compares and threshold is None:
                shown = Comparator(comparator).label if comparator not in ("", Comparator.PASS) else "≥"
                self.add_error("threshold", f"Give the threshold the score is compared with, e.g. “{shown} 0.7”.")
            elif not compares:
                data["threshold"] = None  # "a score passes" has none: a leftover value is not kept
        elif kind in (SliKind.LATENCY, SliKind.COST):
            unit = "milliseconds, e.g. 2000" if kind == SliKind.LATENCY else "dollars per trace, e.g. 0.05"
            if threshold is None:
                self.add_error("threshold", f"Give the limit in {unit}.")
            elif threshold <= 0:
                self.add_error("threshold", f"The limit must be above 0, in {unit}.")
        if kind != SliKind.SCORE:
            data["evaluator"], data["comparator"] = "", ""
        if kind not in (SliKind.SCORE, SliKind.LATENCY, SliKind.COST):
            data["threshold"] = None

    def _refuse_repeats(self, rules: dict[int, burn.AlertRule]) -> None:
        """A rule given twice (also as 14.40 or 60m) would be one rule with two states."""
        first: dict[str, int] = {}
        for index, rule in rules.items():
            if any(f"rules.{index}.{f}" in self.rule_errors for f in RULE_FIELDS):
                continue
            key = rule_key(rule)
            if key in first:
                self.rule_errors[f"rules.{index}.severity"] = [
                    f"This rule repeats rule {first[key] + 1} (same severity, threshold and windows): remove one."
                ]
            else:
                first[key] = index

    def _parse_rules(self) -> dict[int, burn.AlertRule]:
        """Every non-empty rule row by its row number (empty rows are dropped but keep the numbering, so an error
        lands beside its row). A value that cannot be read gets its error here and stays None in the rule, so the
        row's other fields are still checked."""
        rows = {i: r for i, r in enumerate(self.rules_input) if any(str(r.get(f) or "").strip() for f in RULE_FIELDS)}
        if not rows:
            self.rule_errors["rules"] = ["A custom policy needs at least one rule (or choose the default policy)."]
            return {}
        if len(rows) > MAX_RULES:
            self.rule_errors["rules"] = [f"At most {MAX_RULES} rules: {len(rows)} were given."]
            return {}
        rules: dict[int, burn.AlertRule] = {}
        for index, row in rows.items():
            threshold: Decimal | None = None
            try:
                threshold = Decimal(str(row.get("burn_rate_threshold") or "").strip())
                # Finite and of a sane size: exact arithmetic on 1e-100000000 would take minutes.
                if not threshold.is_finite() or len(threshold.as_tuple().digits) > 20 or abs(threshold.adjusted()) > 9:
                    raise InvalidOperation
            except InvalidOperation:
                self.rule_errors[f"rules.{index}.burn_rate_threshold"] = [
                    f"{row.get('burn_rate_threshold')!r} is not a number: write a burn rate such as 14.4."
                ]
                threshold = None
            windows: dict[str, timedelta | None] = {}
            for field in ("long_window", "short_window"):
                try:
                    windows[field] = burn.parse_window(str(row.get(field) or "")[:20])
                except (ValueError, OverflowError):
                    self.rule_errors[f"rules.{index}.{field}"] = [
                        f"{str(row.get(field) or '')[:20]!r} is not a duration: write a whole number followed by m, h "
                        "or d, at most the SLO window, e.g. 5m, 1h or 3d."
                    ]
                    windows[field] = None
            severity = str(row.get("severity") or "").strip()
            rules[index] = burn.AlertRule(severity, threshold, windows["long_window"], windows["short_window"])  # type: ignore[arg-type]
        return rules

    def model_values(self) -> dict[str, Any]:
        """cleaned_data as SLO field values (for services.slo_save)."""
        data = self.cleaned_data
        return {
            "name": data["name"],
            "service": data["service"],
            "environment": data.get("environment", ""),
            "route": data.get("route", ""),
            "model": data.get("model", ""),
            "sli_kind": data["sli_kind"],
            "evaluator": data["evaluator"],
            "comparator": data["comparator"],
            "threshold": data["threshold"],
            "objective": data["objective"],
            "window_days": data["window_days"],
            "policy": data["policy"],
            "runbook": data.get("runbook", ""),
            "owner": data.get("owner"),
        }


@dataclass
class KindFields:
    """One transport's settings as inputs, in its own fieldset of the channel form."""

    kind: str
    label: str
    fields: list[typed_form.BoundField]


class ChannelForm(forms.Form):
    """A channel: its name, its type, and the settings of that type's ``Config`` model, either as one input per
    field (``<kind>-<field>``; the page shows the chosen type's) or, with ``mode`` "json" (the "advanced" view), as a
    JSON object; both are validated by the model, with its messages per field. Secrets are never shown back: left
    empty, the stored one is kept. A post without ``mode`` that carries ``config`` is the JSON view."""

    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(
        label="Type",
        choices=[(name, cls.label) for name, cls in TRANSPORTS.items()],
        widget=forms.Select(attrs={"data-kind-switch": ""}),
    )
    config = forms.JSONField(
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text="The settings of this channel type, as JSON (see the examples).",
    )

    def __init__(self, *args: Any, project: Project, instance: Channel | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.project, self.instance = project, instance
        self.config_errors: dict[str, list[str]] = {}
        self.mode = "fields"
        if self.is_bound:
            self.mode = self.data.get("mode") or ("json" if "config" in self.data else "fields")

    def kind_fieldsets(self) -> list[KindFields]:
        """Every type's inputs: the submitted type's as posted (with their errors) after a failed typed save, the
        channel's own type filled with its settings (secrets never), the others with their defaults."""
        chosen = self.data.get("kind") if self.is_bound else None
        sets = []
        for kind, transport in TRANSPORTS.items():
            specs = typed_form.field_specs(transport.Config, secret=transport.secret_fields)
            prefix = f"{kind}-"
            if self.is_bound and self.mode == "fields" and kind == chosen:
                fields = typed_form.bind(
                    specs,
                    prefix=prefix,
                    data=self.data,
                    errors=self.config_errors,
                    stored_secrets=self._stored_secrets(kind),
                )
            else:
                current: dict[str, Any] = {}
                if self.instance is not None and self.instance.kind == kind:
                    shown = {k: v for k, v in self.instance.config.items() if k not in transport.secret_fields}
                    current = typed_form.current_values(transport.Config, shown)
                fields = typed_form.bind(
                    specs, prefix=prefix, current=current, stored_secrets=self._stored_secrets(kind)
                )
            sets.append(KindFields(kind=kind, label=transport.label, fields=fields))
        return sets

    def _stored_secrets(self, kind: str) -> set[str]:
        if self.instance is None or self.instance.kind != kind:
            return set()
        return {f for f in TRANSPORTS[kind].secret_fields if self.instance.config.get(f)}

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        taken = Channel.objects.filter(project=self.project, name=name)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(f"This project already has a channel named “{name}”.")
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind")
        if kind not in TRANSPORTS:
            return data
        transport = TRANSPORTS[kind]
        if self.mode == "json":
            config = data.get("config")
            if config is None:
                if "config" not in self.errors:
                    self.add_error("config", 'Give the settings as a JSON object, e.g. {"url": "https://…"}.')
                return data
            if not isinstance(config, dict):
                self.add_error("config", 'The settings must be a JSON object, e.g. {"url": "https://…"}.')
                return data
        else:
            specs = typed_form.field_specs(transport.Config, secret=transport.secret_fields)
            try:
                config = typed_form.values_from_post(specs, self.data, prefix=f"{kind}-")
            except typed_form.InputError as exc:
                self.config_errors = exc.errors
                self.add_error(None, f"Some {transport.label} settings are not valid: see the errors beside them.")
                return data
        if self.instance is not None and self.instance.kind == kind:
            # Secrets are never shown back, so an edit that leaves one out keeps the stored value.
            try:
                stored = unseal_secrets(kind, self.instance.config)
            except ValueError:
                self.add_error(None, "The stored secret cannot be decrypted (SECRET_KEY changed): enter it again.")
                return data
            kept = {f: stored[f] for f in transport.secret_fields if f in stored}
            config = {**kept, **{k: v for k, v in config.items() if not (k in kept and v in ("", None))}}
        try:
            data["config"] = transport.Config.model_validate(config).model_dump(mode="json")
        except PydanticError as exc:
            if self.mode == "json":
                self.add_error("config", f"Invalid {transport.label} settings: {pydantic_message(exc)}")
            else:
                self.config_errors = typed_form.field_errors(exc)
                whole = self.config_errors.pop("", [])
                self.add_error(
                    None,
                    f"Invalid {transport.label} settings: {' '.join(whole) or 'see the errors beside the fields.'}",
                )
        return data
