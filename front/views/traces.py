"""Trace explorer (list, saved views, columns, bulk actions), trace detail, and the session and user pages."""

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from accounts.access import member_required
from accounts.models import Membership, Project, Role
from evals.forms import AnnotationForm
from evals.models import Dataset
from evals.selectors import datasets_for_project, not_applicable_for_trace, scores_for_trace
from evals.services import traces_add_to_dataset, traces_annotate
from front.forms import GroupFilterForm, SavedViewForm, TraceFilterForm
from front.selectors import (
    GROUP_SORTS,
    SORT_KEYS,
    InvalidCursor,
    TracePage,
    few_text_count,
    group_list,
    session_view,
    trace_count,
    trace_page,
    user_view,
)
from rollups.selectors import trace_facets
from traces.explorer_services import list_columns_set, saved_view_create, saved_view_delete
from traces.models import LIST_COLUMN_CHOICES, SavedView, Trace
from traces.selectors import list_columns_for, saved_views_for, span_tree, trace_detail

BULK_LIMIT = 200  # traces one bulk action takes (two pages of the list and more)


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # every view here is member_required
    return request.user


def _list_query(query: QueryDict) -> str:
    """The list's query string without the cursor and empty fields: what a saved view stores and what actions
    return to."""
    kept = QueryDict(mutable=True)
    for key, values in query.lists():
        if key != "cursor" and any(values):
            kept.setlist(key, [v for v in values if v])
    return kept.urlencode()


def _sort_links(query: QueryDict, current: str) -> dict[str, dict[str, object]]:
    """Per sort key, the URL of the list sorted by it (largest first; a second click flips the order)."""
    links: dict[str, dict[str, object]] = {}
    for key in SORT_KEYS:
        active = current.removeprefix("-") == key
        descending = current.startswith("-")
        target = query.copy()
        target.pop("cursor", None)
        target["sort"] = ("" if active and descending else "-") + key
        links[key] = {"href": "?" + target.urlencode(), "active": active, "descending": descending}
    return links


@member_required()
def trace_list(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    """The rows first: the count of many matches can take longer than a page of them, so the page asks for it
    afterwards (``trace_list_count``), except for a text search, which counts its few matches to choose its plan
    and shows that number at once."""
    project = membership.project
    form = TraceFilterForm(request.GET)
    page = TracePage(items=[], next_cursor=None)
    count: tuple[int, bool] | None = None
    cursor_error = ""
    sort = "-time"
    if form.is_valid():
        filters = form.to_filters()
        sort = form.to_sort().token
        count = few_text_count(project=project, filters=filters)
        # A search counted to no match has no page to read (reading would search the same traces again).
        if count != (0, False):
            try:
                page = trace_page(
                    project=project,
                    filters=filters,
                    cursor=form.cleaned_data["cursor"],
                    sort=form.to_sort(),
                    few=count is not None,
                )
            except InvalidCursor as exc:
                cursor_error = str(exc)
    next_query = ""
    if page.next_cursor:
        query = request.GET.copy()
        query["cursor"] = page.next_cursor
        next_query = query.urlencode()
    can_edit = membership.allows(Role.EDITOR)
    list_query = _list_query(request.GET)
    saved_views = saved_views_for(project=project)
    facets = trace_facets(project=project)
    columns = set(list_columns_for(user_id=_user(request).pk, project=project))
    if len(facets["environments"]) <= 1:
        columns.discard("environment")  # nothing to tell apart
    return render(
        request,
        "traces/list.html",
        {
            "project": project,
            "form": form,
            "page": page,
            "count": count,
            "count_url": reverse("trace_list_count", args=[slug]) + "?" + list_query if form.is_valid() else "",
            "facets": facets,
            "next_query": next_query,
            "first_query": list_query,
            "list_query": list_query,
            "is_deep": bool(request.GET.get("cursor")),
            "cursor_error": cursor_error,
            "sort": sort,
            "ranked_bound": page.ranked_newest,
            "sort_links": _sort_links(request.GET, sort),
            "score_name": TraceFilterForm.score_name(form.cleaned_data) if form.is_valid() else "",
            "columns": columns,
            "column_choices": LIST_COLUMN_CHOICES,
            "saved_views": saved_views,
            "on_saved_view": any(v.query == list_query for v in saved_views),
            "can_edit": can_edit,
            "datasets": datasets_for_project(project=project) if can_edit else [],
        },
    )


@member_required()
def trace_list_count(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    """How many traces the list's filters match (the list page asks once it shows its rows): exact up to
    COUNT_BOUND, or "not counted" when counting would take longer than COUNT_TIMEOUT_MS."""
    form = TraceFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponse("Fix the filters to count their traces.", status=400, content_type="text/plain")
    count = trace_count(project=membership.project, filters=form.to_filters())
    return render(request, "traces/_count.html", {"count": count})


def _back_to_list(slug: str, query: str) -> HttpResponse:
    url = reverse("trace_list", args=[slug])
    return redirect(url + ("?" + _list_query(QueryDict(query)) if query else ""))


@member_required(methods=("POST",))
def list_columns(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    """Save the column choice (the picker posts it with fetch, or as a plain form without JavaScript)."""
    project = membership.project
    list_columns_set(user=_user(request), project=project, columns=request.POST.getlist("column"))
    if request.headers.get("X-Requested-With") == "fetch":
        return HttpResponse(status=204)
    return _back_to_list(slug, request.POST.get("query", ""))


@member_required(Role.EDITOR, what="save views", methods=("POST",))
def saved_view_new(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    project = membership.project
    query = _list_query(QueryDict(request.POST.get("query", "")))
    filters = TraceFilterForm(QueryDict(query))
    form = SavedViewForm(request.POST, taken={v.name for v in saved_views_for(project=project)})
    if not filters.is_valid():
        messages.error(request, "Fix the filters before saving them as a view.")
    elif not query:
        messages.error(request, "Set some filters or a sort first: a view without them is the plain list.")
    elif form.is_valid():
        saved_view_create(project=project, name=form.cleaned_data["name"], query=query, user=_user(request))
        messages.success(request, f"Saved the view {form.cleaned_data['name']}.")
    else:
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
    return _back_to_list(slug, query)


@member_required(Role.EDITOR, what="delete views", methods=("POST",))
def saved_view_remove(request: HttpRequest, membership: Membership, slug: str, view_id: int) -> HttpResponse:
    view = get_object_or_404(SavedView, project=membership.project, pk=view_id)
    saved_view_delete(view=view)
    messages.success(request, f"Deleted the view {view.name}.")
    return _back_to_list(slug, "")


@member_required(Role.EDITOR, what="add traces to datasets or annotate them", methods=("POST",))
def bulk_action(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    """Add the selected traces to a dataset, or annotate them all at once."""
    project = membership.project
    query = request.POST.get("query", "")
    trace_ids = request.POST.getlist("trace")
    if len(trace_ids) > BULK_LIMIT:
        messages.error(request, f"Select at most {BULK_LIMIT} traces at a time ({len(trace_ids)} selected).")
        return _back_to_list(slug, query)
    traces = list(Trace.objects.filter(project=project, trace_id__in=trace_ids).order_by("start_time"))
    if not traces:
        messages.error(request, "Select one or more traces first (the boxes at the start of each row).")
        return _back_to_list(slug, query)
    action = request.POST.get("action")
    if action == "dataset":
        dataset = Dataset.objects.filter(project=project, pk=request.POST.get("dataset") or 0).first()
        if dataset is None:
            messages.error(request, "Choose a dataset (create one on the Datasets page first).")
            return _back_to_list(slug, query)
        result = traces_add_to_dataset(dataset=dataset, traces=traces)
        messages.success(request, f"Added {result.done} of {len(traces)} traces to {dataset.name}.")
    elif action == "annotate":
        form = AnnotationForm(request.POST)
        if not form.is_valid():
            for errors in form.errors.values():
                for error in errors:
                    messages.error(request, str(error))
            return _back_to_list(slug, query)
        data = form.cleaned_data
        result = traces_annotate(
            traces=traces, verdict=data["verdict"], label=data["label"], comment=data["comment"], author=_user(request)
        )
        messages.success(request, f"Annotated {result.done} traces.")
    else:
        messages.error(request, "Choose what to do with the selected traces: add to dataset or annotate.")
        return _back_to_list(slug, query)
    for reason in result.skipped[:10]:
        messages.warning(request, f"Skipped {reason}")
    return _back_to_list(slug, query)


@member_required()
def trace_view(request: HttpRequest, membership: Membership, slug: str, trace_id: str) -> HttpResponse:
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


# --- sessions and users --------------------------------------------------------------------------------------


def _group_list(request: HttpRequest, project: Project, by: str, template: str) -> HttpResponse:
    form = GroupFilterForm(request.GET)
    rows = group_list(project=project, by=by, filters=form.to_filters(), sort=form.to_sort()) if form.is_valid() else []
    sort = form.to_sort() if form.is_valid() else "last_seen"
    sort_links = {}
    for key in GROUP_SORTS:
        target = request.GET.copy()
        target["sort"] = key
        sort_links[key] = {"href": "?" + target.urlencode(), "active": key == sort, "descending": True}
    return render(
        request,
        template,
        {"project": project, "form": form, "rows": rows, "facets": trace_facets(project=project), "sl": sort_links},
    )


@member_required()
def session_list(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    return _group_list(request, membership.project, "session_id", "traces/sessions.html")


@member_required()
def user_list(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    return _group_list(request, membership.project, "user_id", "traces/users.html")


# Session and user ids are free text (slashes included), so they travel in the query string.
@member_required()
def session_page(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    project = membership.project
    session = session_view(project=project, session_id=request.GET.get("id", ""))
    if session is None:
        raise Http404("No trace in this project has this session id.")
    return render(request, "traces/session.html", {"project": project, "session": session})


@member_required()
def user_page(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    project = membership.project
    end_user = user_view(project=project, user_id=request.GET.get("id", ""))
    if end_user is None:
        raise Http404("No trace in this project has this user id.")
    return render(request, "traces/user.html", {"project": project, "end_user": end_user})
