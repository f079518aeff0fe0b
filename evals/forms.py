"""Forms for evaluator settings, rescoring jobs and annotations. Every error says what to fix."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from pydantic import ValidationError as PydanticError

from evals.evaluators.registry import REGISTRY


def pydantic_message(exc: PydanticError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts)


class EvaluatorConfigForm(forms.Form):
    evaluator = forms.ChoiceField(choices=[(name, name) for name in REGISTRY], widget=forms.HiddenInput)
    enabled = forms.BooleanField(required=False)
    sampling_rate = forms.FloatField(min_value=0.0, max_value=1.0, initial=1.0,
                                     help_text="Share of traces scored, 0 to 1 (1 = every trace).")  # fmt: skip
    params = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
                             help_text="JSON object; empty means the evaluator's defaults.")  # fmt: skip

    def clean_params(self) -> dict[str, Any]:
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
        name, params = data.get("evaluator"), data.get("params")
        if name in REGISTRY and isinstance(params, dict):
            try:
                REGISTRY[name].Params.model_validate(params)
            except PydanticError as exc:
                self.add_error("params", f"Invalid params for {name}: {pydantic_message(exc)}")
        return data


class EvalRunForm(forms.Form):
    service = forms.CharField(required=False, max_length=200, help_text="Empty: every service.")
    since = forms.DateTimeField(help_text="ISO 8601, e.g. 2026-11-01T00:00Z")
    until = forms.DateTimeField()
    evaluators = forms.MultipleChoiceField(required=False, choices=[(n, n) for n in REGISTRY],
                                           help_text="None selected: every enabled evaluator.")  # fmt: skip

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
