"""Forms for evaluator settings, rescoring jobs and annotations. Every error says what to fix."""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from django import forms
from django.forms import BoundField
from pydantic import BaseModel
from pydantic import ValidationError as PydanticError

from accounts import menus
from accounts.models import Project
from evals.datasets import validate_item
from evals.evaluators.registry import REGISTRY
from evals.models import Dataset, Probe, ProbeTargetKind
from evals.probes import TARGETS
from evals.probes.base import TEMPLATE_FIELDS
from evals.probes.schedule import cron_problem
from sre4ai_web.lib import typed_form
from sre4ai_web.lib.validation import pydantic_message


class EvaluatorConfigForm(forms.Form):
    """One evaluator's setting. Its params come from one input per field of the evaluator's ``Params`` model
    (``param-<field>``), or, with ``mode`` "json" (the "advanced" view), from the raw JSON box; both are validated by
    that model, with its messages per field, and stored without the defaults. A post without ``mode`` that carries
    ``params`` is the JSON view (how scripts and older pages post)."""

    PREFIX = "param-"

    evaluator = forms.ChoiceField(choices=[(name, name) for name in REGISTRY], widget=forms.HiddenInput)
    enabled = forms.BooleanField(required=False)
    sampling_rate = forms.FloatField(
        min_value=0.0, max_value=1.0, initial=1.0, help_text="Share of traces scored, 0 to 1 (1 = every trace)."
    )
    params = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text="JSON object; empty means the evaluator's defaults.",
    )

    def __init__(self, *args: Any, current: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.current = current or {}
        self.param_errors: dict[str, list[str]] = {}
        self.mode = "fields"
        if self.is_bound:
            self.mode = self.data.get("mode") or ("json" if "params" in self.data else "fields")

    @property
    def params_model(self) -> type[BaseModel] | None:
        name = self.data.get("evaluator") if self.is_bound else self.initial.get("evaluator")
        return REGISTRY[name].Params if name in REGISTRY else None

    def typed_fields(self) -> list[typed_form.BoundField]:
        """The params as inputs: as submitted (with their errors) after a failed save of the typed view, else the
        current values."""
        model = self.params_model
        if model is None:
            return []
        specs = typed_form.field_specs(model)
        if self.is_bound and self.mode == "fields":
            return typed_form.bind(specs, prefix=self.PREFIX, data=self.data, errors=self.param_errors)
        return typed_form.bind(specs, prefix=self.PREFIX, current=typed_form.current_values(model, self.current))

    def clean_params(self) -> dict[str, Any] | None:
        if self.mode != "json":
            return None
        text = (self.cleaned_data.get("params") or "").strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Params must be JSON: {exc}.") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError('Params must be a JSON object, e.g. {"threshold": 0.7}.')
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        model = self.params_model
        name = data.get("evaluator")
        if model is None or name is None:
            return data
        if self.mode == "json":
            params = data.get("params")
            if params is None:
                return data  # the JSON did not parse: said on the box
        else:
            try:
                params = typed_form.values_from_post(typed_form.field_specs(model), self.data, prefix=self.PREFIX)
            except typed_form.InputError as exc:
                self.param_errors = exc.errors
                self.add_error(None, f"Some {name} parameters are not valid: see the errors beside them.")
                return data
        try:
            validated = model.model_validate(params)
        except PydanticError as exc:
            if self.mode == "json":
                self.add_error("params", f"Invalid params for {name}: {pydantic_message(exc)}")
            else:
                self.param_errors = typed_form.field_errors(exc)
                whole = self.param_errors.pop("", [])
                self.add_error(
                    None, f"Some {name} parameters are not valid: {' '.join(whole) or 'see the errors beside them.'}"
                )
            return data
        data["params"] = typed_form.without_defaults(model, validated)
        return data


class EvalRunForm(forms.Form):
    service = forms.CharField(required=False, max_length=200, help_text="Empty: every service.")
    since = forms.DateTimeField(help_text="ISO 8601, e.g. 2026-11-01T00:00Z")
    until = forms.DateTimeField()
    evaluators = forms.MultipleChoiceField(
        required=False, choices=[(n, n) for n in REGISTRY], help_text="None selected: every enabled evaluator."
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise forms.ValidationError("'since' must be before 'until'.")
        return data


class AnnotationForm(forms.Form):
    verdict = forms.ChoiceField(choices=[("up", "👍 good"), ("down", "👎 bad"), ("", "no verdict")], required=False)
    label = forms.CharField(required=False, max_length=100, help_text="e.g. wrong-answer, off-topic, great")
    comment = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))
    span_id = forms.CharField(required=False, max_length=16, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("verdict") and not data.get("label") and not data.get("comment"):
            raise forms.ValidationError("Give a thumbs up or down, a label or a comment.")
        return data


# --- golden datasets -------------------------------------------------------------------------------------


class DatasetForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, taken: set[str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.taken = taken or set()

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if name in self.taken:
            raise forms.ValidationError(f"A dataset named {name!r} already exists in this project.")
        return name


DOC_SEPARATOR = "\n---\n"
DOC_LINE = re.compile(r"\n[ \t]*---[ \t]*\n")


class DatasetItemForm(forms.Form):
    """One item typed in (or taken from a trace). The input is text, or a JSON chat
    ``[{"role": "user", "content": "..."}]``; context documents are separated by a line holding only ---."""

    input = forms.CharField(
        max_length=100_000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='Text, or a chat as JSON: [{"role": "user", "content": "…"}]',
    )
    expected = forms.CharField(
        required=False, max_length=100_000, widget=forms.Textarea(attrs={"rows": 3}), label="Expected answer"
    )
    context = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Documents the answer should rely on; separate them with a line holding only ---",
    )
    tags = forms.CharField(required=False, max_length=1000, help_text="Comma separated.")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "input" not in data:
            return data
        raw = data["input"].strip()
        value: Any = raw
        if raw.startswith("["):
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw  # text that starts with a bracket
        context = [d.strip() for d in DOC_LINE.split("\n" + data.get("context", "").replace("\r\n", "\n") + "\n")]
        try:
            data["item"] = validate_item(
                {
                    "input": value,
                    "expected": data.get("expected", ""),
                    "context": [d for d in context if d],
                    "tags": [t for t in data.get("tags", "").split(",") if t.strip()],
                }
            )
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return data


class DatasetImportForm(forms.Form):
    file = forms.FileField(help_text="CSV (columns input, expected, context, tags) or JSONL, UTF-8, up to 5 MB.")
    format = forms.ChoiceField(choices=[("", "by file name"), ("csv", "CSV"), ("jsonl", "JSONL")], required=False)

    MAX_BYTES = 5 * 1024 * 1024

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > self.MAX_BYTES:
            raise forms.ValidationError(f"The file is {upload.size // 1024} KB; the limit is 5 MB: split it.")
        return upload


# --- probes ----------------------------------------------------------------------------------------------

HEADER_LINE = re.compile(r"^\s*([^:\s]+)\s*:\s*(.*?)\s*$")


class ProbeForm(forms.Form):
    name = forms.CharField(max_length=200)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none())
    service = forms.CharField(
        max_length=200,
        help_text="Probe traces are recorded as this service's.",
        widget=forms.TextInput(attrs={"list": "services"}),
    )
    environment = forms.RegexField(
        regex=r"^[a-z0-9_-]+$",
        max_length=64,
        initial="probe",
        help_text="Lower-case letters, digits, - and _.",
        error_messages={"invalid": "Use lower-case letters, digits, - and _ only."},
    )
    target_kind = forms.ChoiceField(choices=ProbeTargetKind.choices, label="Target")
    timeout_seconds = forms.FloatField(min_value=0.1, max_value=300, initial=30, help_text="Per item.")
    # HTTP endpoint
    url = forms.CharField(required=False, max_length=2000, label="URL")
    method = forms.ChoiceField(choices=[("POST", "POST"), ("PUT", "PUT"), ("GET", "GET")], required=False)
    headers = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        help_text=f"One per line, Name: value. Secrets as ${{NAME}} ({menus.SECRETS}).",
    )
    body_template = forms.CharField(
        required=False,
        initial='{"question": "{{input_text}}"}',
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        help_text="JSON; placeholders: " + ", ".join("{{" + f + "}}" for f in TEMPLATE_FIELDS),
    )
    answer_path = forms.CharField(
        required=False,
        initial="answer",
        max_length=300,
        help_text="Where the answer is in the JSON response, e.g. data.answer or choices[0].text.",
    )
    documents_path = forms.CharField(
        required=False, max_length=300, help_text="Optional: the retrieved documents (a list), e.g. sources."
    )
    # OpenAI-compatible chat completions
    base_url = forms.CharField(
        required=False, max_length=2000, label="Base URL", help_text="Up to /v1, e.g. https://api.openai.com/v1"
    )
    model = forms.CharField(required=False, max_length=200)
    system_prompt = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=20_000)
    api_key_env = forms.CharField(
        required=False,
        max_length=100,
        label="API key variable",
        help_text=f"Name of the project secret holding the key ({menus.SECRETS}), e.g. OPENAI_API_KEY.",
    )
    # Scoring and schedule
    evaluators = forms.MultipleChoiceField(
        choices=[(n, n) for n in REGISTRY],
        initial=["reference"],
        help_text="Params come from the service's evaluator settings.",
    )
    interval_minutes = forms.IntegerField(
        required=False, min_value=1, max_value=7 * 24 * 60, help_text="Run every N minutes…"
    )
    cron = forms.CharField(
        required=False, max_length=100, help_text="…or on a cron expression (UTC), e.g. */30 * * * *"
    )
    enabled = forms.BooleanField(required=False, initial=True, help_text="Off: runs only on demand.")

    def __init__(self, *args: Any, project: Project, taken: set[str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = Dataset.objects.filter(project=project)  # type: ignore[attr-defined]
        self.taken = taken or set()

    # The form is shown in four fieldsets; the page hides the target kind not chosen.
    GROUPS: ClassVar[dict[str, tuple[str, ...]]] = {
        "main": ("name", "dataset", "service", "environment", "target_kind", "timeout_seconds"),
        "http": ("url", "method", "headers", "body_template", "answer_path", "documents_path"),
        "openai": ("base_url", "model", "system_prompt", "api_key_env"),
        "schedule": ("evaluators", "interval_minutes", "cron", "enabled"),
    }

    def group(self, name: str) -> list[BoundField]:
        return [self[field] for field in self.GROUPS[name]]

    @property
    def main_fields(self) -> list[BoundField]:
        return self.group("main")

    @property
    def http_fields(self) -> list[BoundField]:
        return self.group("http")

    @property
    def openai_fields(self) -> list[BoundField]:
        return self.group("openai")

    @property
    def schedule_fields(self) -> list[BoundField]:
        return self.group("schedule")

    @classmethod
    def initial_for(cls, probe: Probe) -> dict[str, Any]:
        config = dict(probe.target_config)
        if "headers" in config:
            config["headers"] = "\n".join(f"{k}: {v}" for k, v in config["headers"].items())
        if "body_template" in config:
            config["body_template"] = json.dumps(config["body_template"], indent=1)
        return {
            **config,
            "name": probe.name,
            "dataset": probe.dataset_id,
            "service": probe.service,
            "environment": probe.environment,
            "target_kind": probe.target_kind,
            "evaluators": probe.evaluators,
            "interval_minutes": probe.interval_minutes,
            "cron": probe.cron,
            "enabled": probe.enabled,
        }

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if name in self.taken:
            raise forms.ValidationError(f"A probe named {name!r} already exists in this project.")
        return name

    def clean_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data.get("headers", "").splitlines(), start=1):
            if not line.strip():
                continue
            match = HEADER_LINE.match(line)
            if not match:
                raise forms.ValidationError(f"Line {number}: write a header as Name: value.")
            headers[match.group(1)] = match.group(2)
        return headers

    def clean_body_template(self) -> Any:
        text = self.cleaned_data.get("body_template", "").strip()
        if not text:
            return {"question": "{{input_text}}"}
        try:
            return json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"The request template must be JSON: {exc}.") from exc

    def clean_cron(self) -> str:
        cron = " ".join(self.cleaned_data.get("cron", "").split())
        problem = cron_problem(cron) if cron else ""
        if problem:
            raise forms.ValidationError(problem[0].upper() + problem[1:] + ".")
        return cron

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("interval_minutes") and data.get("cron"):
            raise forms.ValidationError("Choose either an interval or a cron expression, not both.")
        kind = data.get("target_kind")
        if kind not in TARGETS or "timeout_seconds" not in data:
            return data
        if kind == ProbeTargetKind.HTTP:
            config = {
                "url": data.get("url", ""),
                "method": data.get("method") or "POST",
                "headers": data.get("headers", {}),
                "body_template": data.get("body_template"),
                "answer_path": data.get("answer_path") or "answer",
                "documents_path": data.get("documents_path", ""),
            }
        else:
            config = {
                "base_url": data.get("base_url", ""),
                "model": data.get("model", ""),
                "system_prompt": data.get("system_prompt", ""),
                "api_key_env": data.get("api_key_env", ""),
            }
        config["timeout_seconds"] = data["timeout_seconds"]
        try:
            data["target_config"] = TARGETS[kind].Config.model_validate(config).model_dump()
        except PydanticError as exc:
            raise forms.ValidationError(f"Target: {pydantic_message(exc)}") from exc
        return data
