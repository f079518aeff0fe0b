"""Evaluator settings, rescoring jobs, trace annotations, golden datasets and probes. Editors change them; viewers can
look."""

from __future__ import annotations

import json
import re
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from accounts.access import member_required
from accounts.models import Membership, Role
from evals.charts import drift_figures
from evals.datasets import ROLES, ItemData, RowError, export_csv, export_jsonl, parse_file
from evals.drift.runs import drift_run_start
from evals.drift.summary import drift_changes, headline
from evals.forms import (
    DOC_SEPARATOR,
    AnnotationForm,
    DatasetForm,
    DatasetImportForm,
    DatasetItemForm,
    EvalRunForm,
    EvaluatorConfigForm,
    ProbeForm,
)
from evals.jobs import job_run_cancel
from evals.models import Dataset, DatasetItem, DriftRun, EvalRun, Probe, ProbeRun
from evals.probes import TARGETS
from evals.probes.charts import probe_history_figures
from evals.probes.diff import side_by_side
from evals.probes.runs import probe_run_start
from evals.selectors import (
    dataset_items,
    datasets_for_project,
    effective_configs,
    eval_item,
    eval_runs_for_project,
    latest_drift_runs,
    probe_history,
    probe_run_results,
    probes_for_project,
    traces_with_spans,
)
from evals.services import (
    ExternalScore,
    InUseError,
    dataset_create,
    dataset_delete,
    dataset_item_delete,
    dataset_items_add,
    eval_run_start,
    evaluator_config_reset,
    evaluator_config_set,
    probe_delete,
    probe_save,
    score_record,
)
from rollups.selectors import trace_facets
from traces.models import Span, Trace


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # every view here is member_required
    return request.user


@member_required(Role.EDITOR, what="change evaluator settings", writes_only=True)
def evaluator_settings(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    project = membership.project
    can_edit = membership.allows(Role.EDITOR)
    service = request.GET.get("service", "")
    services = trace_facets(project=project)["services"]
    if service and service not in services:
        raise Http404("No such service in this project.")
    errors: dict[str, EvaluatorConfigForm] = {}
    if request.method == "POST":
        current = next(
            (
                c.params
                for c in effective_configs(project=project, service=service)
                if c.evaluator.name == request.POST.get("evaluator")
            ),
            {},
        )
        form = EvaluatorConfigForm(request.POST, current=current)
        if "reset" in request.POST and request.POST.get("evaluator"):
            evaluator_config_reset(
                project=project, service=service, evaluator=request.POST["evaluator"], actor=_user(request)
            )
            messages.success(request, f"{request.POST['evaluator']} now inherits its setting.")
            return redirect(f"{reverse('evaluator_settings', args=[slug])}?service={service}")
        if form.is_valid():
            data = form.cleaned_data
            evaluator_config_set(
                project=project,
                service=service,
                evaluator=data["evaluator"],
                enabled=data["enabled"],
                params=data["params"],
                sampling_rate=data["sampling_rate"],
                user=_user(request),
            )
            scope = f"service {service}" if service else "the project"
            messages.success(request, f"Saved {data['evaluator']} for {scope}.")
            return redirect(f"{reverse('evaluator_settings', args=[slug])}?service={service}")
        errors[str(request.POST.get("evaluator"))] = form
    rows = []
    for config in effective_configs(project=project, service=service):
        name = config.evaluator.name
        form = errors.get(name) or EvaluatorConfigForm(
            initial={
                "evaluator": name,
                "enabled": config.enabled,
                "sampling_rate": config.sampling_rate,
                "params": json.dumps(config.params, indent=1) if config.params else "",
            },
            current=config.params,
        )
        rows.append({"config": config, "form": form, "fields": form.typed_fields()})
    return render(
        request,
        "evals/settings.html",
        {
            "project": project,
            "can_edit": can_edit,
            "read_only": not can_edit,
            "service": service,
            "services": services,
            "rows": rows,
        },
        status=400 if errors else 200,
    )


@member_required(Role.EDITOR, what="start rescoring jobs", writes_only=True)
def eval_runs(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    project = membership.project
    can_edit = membership.allows(Role.EDITOR)
    form = EvalRunForm(request.POST or None, initial={"service": request.GET.get("service", "")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        run = eval_run_start(
            project=project,
            service=data["service"],
            since=data["since"],
            until=data["until"],
            evaluators=data["evaluators"],
            user=_user(request),
        )
        messages.success(request, f"Rescoring {run.total} traces.")
        return redirect("eval_runs", slug=slug)
    return render(
        request,
        "evals/runs.html",
        {
            "project": project,
            "can_edit": can_edit,
            "form": form,
            "runs": eval_runs_for_project(project=project),
        },
    )


@member_required()
def eval_run_progress(request: HttpRequest, membership: Membership, slug: str, run_id: int) -> JsonResponse:
    project = membership.project
    run = get_object_or_404(EvalRun, pk=run_id, project=project)
    return JsonResponse(
        {
            "status": run.status,
            "done": run.done,
            "total": run.total,
            "percent": run.percent,
            "failed": run.failed,
            "error": run.error,
        }
    )


@member_required(Role.EDITOR, what="cancel rescoring jobs", methods=("POST",))
def eval_run_cancel_view(request: HttpRequest, membership: Membership, slug: str, run_id: int) -> HttpResponse:
    run = get_object_or_404(EvalRun, pk=run_id, project=membership.project)
    job_run_cancel(run=run)
    messages.success(request, f"Run {run.pk} cancelled at {run.done} of {run.total} traces.")
    return redirect("eval_runs", slug=slug)


@member_required(Role.EDITOR, what="annotate traces", methods=("POST",))
def annotate(request: HttpRequest, membership: Membership, slug: str, trace_id: str) -> HttpResponse:
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


@member_required(Role.EDITOR, what="start drift runs", writes_only=True)
def drift_view(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    project = membership.project
    can_edit = membership.allows(Role.EDITOR)
    services = trace_facets(project=project)["services"]
    service = request.GET.get("service") or (services[0] if services else "")
    if request.method == "POST":
        service = request.POST.get("service", "")
        if service not in services:
            messages.error(request, "Choose a service that has traffic.")
            return redirect("drift", slug=slug)
        queued = drift_run_start(project=project, service=service, trigger="manual", user=_user(request))
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
    rows = [{**r, "index": i} for i, r in enumerate(results)]
    changes = drift_changes(results)
    since = f"{run.current_since:%A} {run.current_since.day} {run.current_since:%b %H:%M} UTC" if run else ""
    return render(
        request,
        "evals/drift.html",
        {
            "project": project,
            "can_edit": can_edit,
            "services": services,
            "service": service,
            "run": run,
            "runs": runs,
            "results": rows,
            "figures": drift_figures(results),
            "headline": headline(changes, since=since),
            "changes": [(c, rows[c.index]) for c in changes],
            "others": [r for r in rows if r["verdict"] != "drift"],
            "steady": sum(r["verdict"] == "no_drift" for r in rows),
            "too_few": sum(r["verdict"] == "insufficient_data" for r in rows),
            "history": DriftRun.objects.filter(project=project, service=service)[:10],
        },
    )


# --- golden datasets -------------------------------------------------------------------------------------


@member_required(Role.EDITOR, what="create datasets", writes_only=True)
def datasets_view(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    project = membership.project
    datasets = datasets_for_project(project=project)
    form = DatasetForm(request.POST or None, taken={d.name for d in datasets})
    if request.method == "POST" and form.is_valid():
        dataset = dataset_create(
            project=project,
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            user=_user(request),
        )
        messages.success(request, f"Dataset {dataset.name} created: add items or import a file.")
        return redirect("dataset_detail", slug=slug, dataset_id=dataset.pk)
    return render(
        request,
        "evals/datasets.html",
        {
            "project": project,
            "can_edit": membership.allows(Role.EDITOR),
            "datasets": datasets,
            "form": form,
        },
    )


@member_required(Role.EDITOR, what="change datasets", writes_only=True)
def dataset_view(request: HttpRequest, membership: Membership, slug: str, dataset_id: int) -> HttpResponse:
    project = membership.project
    dataset = get_object_or_404(Dataset, pk=dataset_id, project=project)
    item_form = DatasetItemForm(request.POST if request.POST.get("action") == "add" else None)
    import_form = DatasetImportForm(*((request.POST, request.FILES) if request.POST.get("action") == "import" else ()))
    row_errors: list[RowError] = []
    if request.method == "POST":
        action = request.POST.get("action")
        here = reverse("dataset_detail", args=[slug, dataset.pk])
        if action == "add" and item_form.is_valid():
            dataset_items_add(dataset=dataset, items=[item_form.cleaned_data["item"]])
            messages.success(request, "Item added.")
            return redirect(here)
        if action == "import" and import_form.is_valid():
            upload = import_form.cleaned_data["file"]
            items, row_errors = parse_file(upload.name, upload.read(), import_form.cleaned_data["format"])
            if not row_errors:
                dataset_items_add(dataset=dataset, items=items)
                messages.success(request, f"Imported {len(items)} items.")
                return redirect(here)
        if action == "delete_dataset":
            try:
                dataset_delete(dataset=dataset, actor=_user(request))
            except InUseError as exc:
                messages.error(request, str(exc))
                return redirect(here)
            messages.success(request, f"Dataset “{dataset.name}” deleted.")
            return redirect("datasets", slug)
        if action == "delete":
            item = get_object_or_404(DatasetItem, pk=request.POST.get("item", ""), dataset=dataset)
            dataset_item_delete(item=item)
            messages.success(request, "Item deleted.")
            return redirect(here)
    return render(
        request,
        "evals/datasets_detail.html",
        {
            "project": project,
            "can_edit": membership.allows(Role.EDITOR),
            "dataset": dataset,
            "items": dataset_items(dataset=dataset),
            "item_form": item_form,
            "import_form": import_form,
            "row_errors": row_errors[:100],
            "more_row_errors": max(len(row_errors) - 100, 0),
            "probes": dataset.probes.all(),
        },
    )


@member_required()
def dataset_export(request: HttpRequest, membership: Membership, slug: str, dataset_id: int, fmt: str) -> HttpResponse:
    project = membership.project
    dataset = get_object_or_404(Dataset, pk=dataset_id, project=project)
    items = [
        ItemData(input=i.input, expected=i.expected, context=tuple(i.context), tags=tuple(i.tags))
        for i in dataset.items.order_by("pk")
    ]
    if fmt == "csv":
        body, content_type = export_csv(items), "text/csv; charset=utf-8"
    else:
        body, content_type = export_jsonl(items), "application/jsonl; charset=utf-8"
    response = HttpResponse(body, content_type=content_type)
    filename = re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset.name).strip("-") or "dataset"
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return response


@member_required(Role.EDITOR, what="add items to datasets")
def trace_to_dataset(request: HttpRequest, membership: Membership, slug: str, trace_id: str) -> HttpResponse:
    """The trace page's "add to dataset": the root's input, and its answer as the expected answer (editable)."""
    project = membership.project
    trace = get_object_or_404(Trace, project=project, trace_id=trace_id)
    datasets = datasets_for_project(project=project)
    if request.method == "POST":
        form = DatasetItemForm(request.POST)
        dataset = Dataset.objects.filter(project=project, pk=request.POST.get("dataset") or 0).first()
        if dataset is None:
            form.add_error(None, "Choose a dataset (create one on the Datasets page first).")
        if form.is_valid() and dataset is not None:
            dataset_items_add(dataset=dataset, items=[form.cleaned_data["item"]], source_trace_id=trace.trace_id)
            messages.success(request, f"Added to {dataset.name}.")
            return redirect("dataset_detail", slug=slug, dataset_id=dataset.pk)
    else:
        spans = list(traces_with_spans(project_id=project.pk, trace_pks=[trace.pk]).get().spans.all())
        item = eval_item(trace, spans)
        root = next((s for s in spans if s.span_id == trace.root_span_id), None)
        # A chat input is kept as a chat (its system prompt and turns matter); anything else as text.
        chat = (
            root is not None
            and isinstance(root.input, list)
            and all(
                isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in root.input
            )
        )
        initial_input = json.dumps(root.input, ensure_ascii=False, indent=1) if chat and root else item.input
        form = DatasetItemForm(
            initial={
                "input": initial_input,
                "expected": item.output,
                "context": DOC_SEPARATOR.join(d.text for d in item.context if not d.id.startswith("tool:")),
            }
        )
    return render(
        request,
        "evals/datasets_from_trace.html",
        {
            "project": project,
            "trace": trace,
            "form": form,
            "datasets": datasets,
            "selected": request.POST.get("dataset", ""),
        },
    )


# --- probes ----------------------------------------------------------------------------------------------


def _probe_from_form(probe: Probe, data: dict[str, Any]) -> Probe:
    for name in (
        "name",
        "dataset",
        "service",
        "environment",
        "target_kind",
        "target_config",
        "evaluators",
        "interval_minutes",
        "cron",
        "enabled",
    ):
        setattr(probe, name, data[name])
    return probe


@member_required(Role.EDITOR, what="create probes", writes_only=True)
def probes_view(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    project = membership.project
    rows = probes_for_project(project=project)
    form = ProbeForm(request.POST or None, project=project, taken={p.name for p, _ in rows})
    if request.method == "POST" and form.is_valid():
        probe = probe_save(probe=_probe_from_form(Probe(project=project), form.cleaned_data), user=_user(request))
        messages.success(request, f"Probe {probe.name} created. Run it now, or wait for its schedule.")
        return redirect("probe_detail", slug=slug, probe_id=probe.pk)
    return render(
        request,
        "evals/probes.html",
        {
            "project": project,
            "can_edit": membership.allows(Role.EDITOR),
            "rows": rows,
            "form": form,
            "services": trace_facets(project=project)["services"],
        },
    )


@member_required(Role.EDITOR, what="run or change probes", writes_only=True)
def probe_view(request: HttpRequest, membership: Membership, slug: str, probe_id: int) -> HttpResponse:
    project = membership.project
    probe = get_object_or_404(Probe.objects.select_related("dataset"), pk=probe_id, project=project)
    can_edit = membership.allows(Role.EDITOR)
    here = reverse("probe_detail", args=[slug, probe.pk])
    taken = set(Probe.objects.filter(project=project).exclude(pk=probe.pk).values_list("name", flat=True))
    editing = request.method == "POST" and request.POST.get("action") == "save"
    form = ProbeForm(
        request.POST if editing else None, project=project, taken=taken, initial=ProbeForm.initial_for(probe)
    )
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "run":
            run = probe_run_start(probe=probe, trigger="manual", user=_user(request))
            messages.success(request, f"Run {run.pk} started over {run.total} items.")
            return redirect(f"{here}?run={run.pk}")
        if action == "cancel":
            run = get_object_or_404(ProbeRun, pk=request.POST.get("run", ""), probe=probe)
            job_run_cancel(run=run)
            messages.success(request, f"Run {run.pk} cancelled after {run.done} of {run.total} items.")
            return redirect(f"{here}?run={run.pk}")
        if action == "delete_probe":
            probe_delete(probe=probe, actor=_user(request))
            messages.success(request, f"Probe “{probe.name}” deleted; its traces stay in the trace list.")
            return redirect("probes", slug)
        if editing and form.is_valid():
            probe_save(probe=_probe_from_form(probe, form.cleaned_data))
            messages.success(request, "Probe saved.")
            return redirect(here)
    history = probe_history(probe=probe)
    shown: ProbeRun | None = history[-1] if history else None
    if request.GET.get("run", "").isdigit():
        shown = get_object_or_404(ProbeRun, pk=int(request.GET["run"]), probe=probe)
    results = probe_run_results(run=shown) if shown else []
    return render(
        request,
        "evals/probes_detail.html",
        {
            "project": project,
            "can_edit": can_edit,
            "probe": probe,
            "form": form,
            "editing": editing,
            "target": TARGETS[probe.target_kind].from_config(probe.target_config).display_config()
            if probe.target_kind in TARGETS
            else {},
            "history": list(reversed(history)),
            "run": shown,
            "figures": probe_history_figures(history),
            "results": [
                (
                    r,
                    side_by_side(r.previous_answer, r.answer) if r.answer_changed else None,
                    side_by_side(r.expected, r.answer) if not r.passed and r.expected and not r.error else None,
                )
                for r in results
            ],
        },
    )


@member_required()
def probe_run_progress(
    request: HttpRequest, membership: Membership, slug: str, probe_id: int, run_id: int
) -> JsonResponse:
    project = membership.project
    run = get_object_or_404(ProbeRun, pk=run_id, probe_id=probe_id, project=project)
    return JsonResponse(
        {
            "status": run.status,
            "done": run.done,
            "total": run.total,
            "percent": run.percent,
            "passed": run.passed,
            "errors": run.errors,
            "error": run.error,
        }
    )
