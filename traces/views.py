"""Trace list and trace detail pages."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import Role
from accounts.selectors import membership_for
from evals.forms import AnnotationForm
from evals.selectors import not_applicable_for_trace, scores_for_trace
from traces.forms import TraceFilterForm
from traces.selectors import InvalidCursor, TracePage, span_tree, trace_detail, trace_facets, trace_page


@login_required
def trace_list(request: HttpRequest, slug: str) -> HttpResponse:
    project = membership_for(user=request.user, slug=slug).project
    form = TraceFilterForm(request.GET)
    page = TracePage(items=[], next_cursor=None)
    cursor_error = ""
    if form.is_valid():
        try:
            page = trace_page(project=project, filters=form.to_filters(), cursor=form.cleaned_data["cursor"])
        except InvalidCursor as exc:
            cursor_error = str(exc)
    next_query = ""
    if page.next_cursor:
        query = request.GET.copy()
        query["cursor"] = page.next_cursor
        next_query = query.urlencode()
    first_query = request.GET.copy()
    first_query.pop("cursor", None)
    return render(
        request,
        "traces/list.html",
        {
            "project": project,
            "form": form,
            "page": page,
            "facets": trace_facets(project=project),
            "next_query": next_query,
            "first_query": first_query.urlencode(),
            "is_deep": bool(request.GET.get("cursor")),
            "cursor_error": cursor_error,
        },
    )


@login_required
def trace_view(request: HttpRequest, slug: str, trace_id: str) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    project = membership.project
    trace = trace_detail(project=project, trace_id=trace_id)
    if trace is None:
        raise Http404("No such trace in this project.")
    scores = scores_for_trace(trace=trace)
    return render(
        request,
        "traces/detail.html",
        {
            "project": project,
            "trace": trace,
            "nodes": span_tree(trace),
            "scores": scores,
            "failing_scores": [s for s in scores if s.passed is False],
            "not_applicable": not_applicable_for_trace(project=project, trace=trace, scores=scores),
            "can_annotate": membership.allows(Role.EDITOR),
            "annotation_form": AnnotationForm(),
        },
    )
