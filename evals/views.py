"""Evaluator settings, rescoring jobs and trace annotations. Editors change them; viewers can look."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.selectors import membership_for
from evals.charts import drift_figures
from evals.drift.runs import drift_run_create
from evals.forms import AnnotationForm, EvalRunForm, EvaluatorConfigForm
from evals.models import DriftRun, EvalRun
from evals.selectors import effective_configs, eval_runs_for_project, latest_drift_runs
from evals.services import (
    ExternalScore,
    eval_run_cancel,
    eval_run_create,
    evaluator_config_reset,
    evaluator_config_set,
    score_record,
)
from evals.tasks import drift_run, rescore_step
from traces.models import Span, Trace
from traces.selectors import trace_facets


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # every view here is login_required
    return request.user


@login_required
def evaluator_settings(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    project = membership.project
    can_edit = membership.allows(Role.EDITOR)
    service = request.GET.get("service", "")
    services = trace_facets(project=project)["services"]
    if service and service not in services:
        raise Http404("No such service in this project.")
    errors: dict[str, EvaluatorConfigForm] = {}
    if request.method == "POST":
        if not can_edit:
            return HttpResponseForbidden("Only editors and admins can change evaluator settings.")
        form = EvaluatorConfigForm(request.POST)
        if "reset" in request.POST and request.POST.get("evaluator"):
            evaluator_config_reset(project=project, service=service, evaluator=request.POST["evaluator"])
            messages.success(request, f"{request.POST['evaluator']} now inherits its setting.")
            return redirect(f"{reverse('evaluator_settings', args=[slug])}?service={service}")
        if form.is_valid():
            data = form.cleaned_data
            evaluator_config_set(project=project, service=service, evaluator=data["evaluator"],
                                 enabled=data["enabled"], params=data["params"], sampling_rate=data["sampling_rate"],
                                 user=_user(request))  # fmt: skip
            scope = f"service {service}" if service else "the project"
            messages.success(request, f"Saved {data['evaluator']} for {scope}.")
            return redirect(f"{reverse('evaluator_settings', args=[slug])}?service={service}")
        errors[str(request.POST.get("evaluator"))] = form
    rows = []
    for config in effective_configs(project=project, service=service):
        name = config.evaluator.name
        form = errors.get(name) or EvaluatorConfigForm(initial={
            "evaluator": name, "enabled": config.enabled, "sampling_rate": config.sampling_rate,
            "params": json.dumps(config.params, indent=1) if config.params else "",
        })  # fmt: skip
        schema = config.evaluator.Params.model_json_schema().get("properties", {})
        rows.append({"config": config, "form": form, "param_names": sorted(schema)})
    return render(request, "evals/settings.html", {
        "project": project, "can_edit": can_edit, "service": service, "services": services, "rows": rows,
    })  # fmt: skip


@login_required
def eval_runs(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    project = membership.project
    can_edit = membership.allows(Role.EDITOR)
    form = EvalRunForm(request.POST or None, initial={"service": request.GET.get("service", "")})
    if request.method == "POST":
        if not can_edit:
            return HttpResponseForbidden("Only editors and admins can start rescoring jobs.")
        if form.is_valid():
            data = form.cleaned_data
            with transaction.atomic():
                run = eval_run_create(project=project, service=data["service"], since=data["since"],
                                      until=data["until"], evaluators=data["evaluators"], user=_user(request))  # fmt: skip
                transaction.on_commit(lambda: rescore_step.apply_async((run.pk,)))
            messages.success(request, f"Rescoring {run.total} traces.")
            return redirect("eval_runs", slug=slug)
    return render(request, "evals/runs.html", {
        "project": project, "can_edit": can_edit, "form": form, "runs": eval_runs_for_project(project=project),
    })  # fmt: skip


@login_required
def eval_run_progress(request: HttpRequest, slug: str, run_id: int) -> JsonResponse:
    project = membership_for(user=request.user, slug=slug).project
    run = get_object_or_404(EvalRun, pk=run_id, project=project)
    return JsonResponse({"status": run.status, "done": run.done, "total": run.total, "percent": run.percent,
                         "failed": run.failed, "error": run.error})  # fmt: skip


@login_required
@require_POST
def eval_run_cancel_view(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    if not membership.allows(Role.EDITOR):
        return HttpResponseForbidden("Only editors and admins can cancel rescoring jobs.")
    run = get_object_or_404(EvalRun, pk=run_id, project=membership.project)
    eval_run_cancel(run=run)
    messages.success(request, f"Run {run.pk} cancelled at {run.done} of {run.total} traces.")
    return redirect("eval_runs", slug=slug)


@login_required
@require_POST
def annotate(request: HttpRequest, slug: str, trace_id: str) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    if not membership.allows(Role.EDITOR):
        return HttpResponseForbidden("Only editors and admins can annotate traces.")
    trace = get_object_or_404(Trace, project=membership.project, trace_id=trace_id)
    form = AnnotationForm(request.POST)
    detail = reverse("trace_detail", args=[slug, trace.trace_id])
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return redirect(detail)
    data = form.cleaned_data
    span = Span.objects.filter(trace=trace, span_id=data["span_id"]).first() if data["span_id"] else None
    verdict = data["verdict"]
    score_record(
        score=ExternalScore(
            trace=trace,
            span=span,
            name="human_feedback",
            value=1.0 if verdict == "up" else 0.0 if verdict == "down" else None,
            label=data["label"],
            passed=True if verdict == "up" else False if verdict == "down" else None,
            comment=data["comment"],
            external_id="",
            source="human",
        ),
        author=_user(request),
    )
    messages.success(request, "Annotation saved.")
    return redirect(detail + (f"#span-{span.span_id}" if span else ""))


@login_required
def drift_view(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    project = membership.project
    can_edit = membership.allows(Role.EDITOR)
    services = trace_facets(project=project)["services"]
    service = request.GET.get("service") or (services[0] if services else "")
    if request.method == "POST":
        if not can_edit:
            return HttpResponseForbidden("Only editors and admins can start drift runs.")
        service = request.POST.get("service", "")
        if service not in services:
            messages.error(request, "Choose a service that has traffic.")
            return redirect("drift", slug=slug)
        with transaction.atomic():
            queued = drift_run_create(project=project, service=service, trigger="manual", user=_user(request))
            transaction.on_commit(lambda: drift_run.apply_async((queued.pk,)))
        messages.success(request, f"Drift run {queued.pk} queued for {service}; it takes a few seconds.")
        return redirect(f"{reverse('drift', args=[slug])}?service={service}")
    runs = latest_drift_runs(project=project)
    run = runs.get(service)
    if request.GET.get("run", "").isdigit():
        run = get_object_or_404(DriftRun, project=project, pk=int(request.GET["run"]))
        service = run.service
    # Drifted signals first: they are what the page is opened for.
    order = {"drift": 0, "no_drift": 1, "insufficient_data": 2}
    results = sorted(run.results if run else [], key=lambda r: (order.get(r["verdict"], 3), r["signal"]))
    return render(request, "evals/drift.html", {
        "project": project, "can_edit": can_edit, "services": services, "service": service, "run": run,
        "runs": runs, "results": results, "figures": drift_figures(results),
        "history": DriftRun.objects.filter(project=project, service=service)[:10],
    })  # fmt: skip
