"""The canary page: pick a service, an attribute and two values; see the verdict, each signal and both cohorts'
distributions. A GET with the form's fields runs the comparison (read-only, so the URL can be shared)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.access import member_required
from accounts.models import Membership
from evals.canary.charts import canary_figures
from evals.canary.cohorts import CohortError
from evals.canary.forms import ATTRIBUTE_SUGGESTIONS, CanaryForm
from rollups.models import Dimension
from rollups.selectors import slice_values, trace_facets
from traces.templatetags.trace_format import duration, usd


def _value_text(signal: dict[str, Any], value: float | None) -> str:
    if value is None:
        return "–"
    if signal["kind"] == "rate":
        return f"{value:.1%}"
    if signal["unit"] == "ms":
        return duration(value)
    if signal["unit"] == "USD":
        return usd(Decimal(str(value)))
    return f"{value:.3g}"


def _effect_text(signal: dict[str, Any]) -> str:
    effect = signal["effect"]
    if effect is None:
        # to_dict() turns an infinite shift (from a zero baseline median) into None.
        return "from zero" if signal["baseline"] == 0 and signal["canary"] not in (0, None) else "–"
    return f"{effect * 100:+.1f} pt" if signal["kind"] == "rate" else f"{effect:+.1%}"


@member_required()
def canary_view(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    project = membership.project
    services = trace_facets(project=project)["services"]
    bound = "baseline" in request.GET
    form = CanaryForm(
        request.GET if bound else None, initial={"service": services[0] if services else "", "attribute": "release"}
    )
    report, error, status = None, "", 200
    if bound:
        if form.is_valid():
            try:
                report = form.analyse(project).to_dict()
            except CohortError as exc:
                error, status = str(exc), 400
        else:
            status = 400
    # Values to pick the two cohorts from, when the attribute is one the rollups slice by (release, model, prompt).
    attribute = (request.GET.get("attribute") or form["attribute"].value() or "").strip()
    service = (request.GET.get("service") or form["service"].value() or "").strip()
    values = (
        slice_values(project=project, dimension=attribute, service=service)
        if attribute in Dimension.values and attribute
        else []
    )
    signals, margins = [], ""
    if report:
        config = report["config"]
        margins = f"{config['rate_margin'] * 100:g} points of a rate, {config['relative_margin']:.0%} median shift"
        # Worse first: they are what decides the verdict; then the rest in the report's order.
        order = {"worse": 0, "better": 1, "pass": 2, "insufficient_data": 3}
        signals = sorted(report["signals"], key=lambda s: order[s["classification"]])
        for s in signals:
            s.update(
                baseline_text=_value_text(s, s["baseline"]),
                canary_text=_value_text(s, s["canary"]),
                effect_text=_effect_text(s),
                classification_text=s["classification"].replace("_", " "),
            )
    return render(
        request,
        "evals/canary.html",
        {
            "project": project,
            "form": form,
            "services": services,
            "attributes": ATTRIBUTE_SUGGESTIONS,
            "values": values,
            "report": report,
            "signals": signals,
            "margins": margins,
            "figures": canary_figures(signals),
            "error": error,
        },
        status=status,
    )
