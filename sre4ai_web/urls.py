from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import path
from django.utils.functional import lazy
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import views as account_views
from accounts.forms import AdminLoginForm, LoginForm
from evals import api as eval_api
from evals import export_settings
from evals.canary import api as canary_api
from front import api as front_api
from front.views import canary as canary_views
from front.views import evals as eval_views
from front.views import incidents as incident_views
from front.views import overview as overview_views
from front.views import settings as settings_views
from front.views import traces as trace_views
from guard import api as guard_api
from guard import views as guard_views
from slos import api as slo_api
from slos import views as slo_views
from slos import views_budgets as budget_views
from traces import api as trace_api

# The admin's sign-in is throttled like the login page's.
admin.site.login_form = AdminLoginForm

urlpatterns = [
    path("", account_views.home, name="home"),
    path("projects/new/", account_views.project_create_view, name="project_create"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="accounts/login.html", authentication_form=LoginForm),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("logout/everywhere/", account_views.logout_everywhere, name="logout_everywhere"),
    path("p/<slug:slug>/", overview_views.overview_view, name="overview"),
    path("p/<slug:slug>/first-trace/", overview_views.first_trace_status, name="first_trace_status"),
    path("p/<slug:slug>/first-trace/key/", overview_views.first_trace_key, name="first_trace_key"),
    # Service names are free text (slashes included), so they travel in the query string.
    path("p/<slug:slug>/service/", overview_views.service_view, name="service_detail"),
    path("p/<slug:slug>/traces/", trace_views.trace_list, name="trace_list"),
    path("p/<slug:slug>/traces/count/", trace_views.trace_list_count, name="trace_list_count"),
    path("p/<slug:slug>/traces/columns/", trace_views.list_columns, name="trace_list_columns"),
    path("p/<slug:slug>/traces/views/", trace_views.saved_view_new, name="saved_view_new"),
    path("p/<slug:slug>/traces/views/<int:view_id>/delete/", trace_views.saved_view_remove, name="saved_view_delete"),
    path("p/<slug:slug>/traces/bulk/", trace_views.bulk_action, name="trace_bulk"),
    # Session and user ids are free text (slashes included), so they travel in the query string.
    path("p/<slug:slug>/sessions/", trace_views.session_list, name="session_list"),
    path("p/<slug:slug>/session/", trace_views.session_page, name="session_detail"),
    path("p/<slug:slug>/users/", trace_views.user_list, name="user_list"),
    path("p/<slug:slug>/user/", trace_views.user_page, name="user_detail"),
    path("p/<slug:slug>/traces/<str:trace_id>/", trace_views.trace_view, name="trace_detail"),
    path("p/<slug:slug>/traces/<str:trace_id>/annotate/", eval_views.annotate, name="trace_annotate"),
    path("p/<slug:slug>/evaluators/", eval_views.evaluator_settings, name="evaluator_settings"),
    path("p/<slug:slug>/drift/", eval_views.drift_view, name="drift"),
    path("p/<slug:slug>/canary/", canary_views.canary_view, name="canary"),
    path("p/<slug:slug>/evaluators/runs/", eval_views.eval_runs, name="eval_runs"),
    path(
        "p/<slug:slug>/evaluators/runs/<int:run_id>/progress/", eval_views.eval_run_progress, name="eval_run_progress"
    ),
    path("p/<slug:slug>/evaluators/runs/<int:run_id>/cancel/", eval_views.eval_run_cancel_view, name="eval_run_cancel"),
    path("p/<slug:slug>/traces/<str:trace_id>/to-dataset/", eval_views.trace_to_dataset, name="trace_to_dataset"),
    path("p/<slug:slug>/datasets/", eval_views.datasets_view, name="datasets"),
    path("p/<slug:slug>/datasets/<int:dataset_id>/", eval_views.dataset_view, name="dataset_detail"),
    path(
        "p/<slug:slug>/datasets/<int:dataset_id>/export.<str:fmt>",
        eval_views.dataset_export,
        name="dataset_export",
    ),
    path("p/<slug:slug>/probes/", eval_views.probes_view, name="probes"),
    path("p/<slug:slug>/probes/<int:probe_id>/", eval_views.probe_view, name="probe_detail"),
    path(
        "p/<slug:slug>/probes/<int:probe_id>/runs/<int:run_id>/progress/",
        eval_views.probe_run_progress,
        name="probe_run_progress",
    ),
    path("p/<slug:slug>/slos/", slo_views.slo_list, name="slo_list"),
    path("p/<slug:slug>/slos/new/", slo_views.slo_form, name="slo_create"),
    path("p/<slug:slug>/slos/<int:slo_id>/", slo_views.slo_detail, name="slo_detail"),
    path("p/<slug:slug>/slos/<int:slo_id>/edit/", slo_views.slo_form, name="slo_edit"),
    path("p/<slug:slug>/slos/<int:slo_id>/delete/", slo_views.slo_delete, name="slo_delete"),
    path("p/<slug:slug>/incidents/", incident_views.incident_list, name="incident_list"),
    path("p/<slug:slug>/incidents/<int:incident_id>/", incident_views.incident_detail, name="incident_detail"),
    path("p/<slug:slug>/incidents/<int:incident_id>/act/", incident_views.incident_action, name="incident_action"),
    path("p/<slug:slug>/channels/", slo_views.channel_list, name="channel_list"),
    path("p/<slug:slug>/budgets/", budget_views.budget_list, name="budget_list"),
    path("p/<slug:slug>/budgets/<int:budget_id>/delete/", budget_views.budget_delete, name="budget_delete"),
    path("p/<slug:slug>/guard/", guard_views.guard_policies, name="guard_policies"),
    path("p/<slug:slug>/channels/<int:channel_id>/delete/", slo_views.channel_delete, name="channel_delete"),
    path("p/<slug:slug>/channels/<int:channel_id>/edit/", slo_views.channel_edit, name="channel_edit"),
    path("p/<slug:slug>/channels/<int:channel_id>/test/", slo_views.channel_test_view, name="channel_test"),
    path("p/<slug:slug>/settings/", settings_views.project_settings, name="project_settings"),
    path("p/<slug:slug>/settings/keys/<int:key_id>/revoke/", account_views.api_key_revoke_view, name="api_key_revoke"),
    path("p/<slug:slug>/settings/secrets/", account_views.project_secrets_view, name="project_secrets"),
    path("p/<slug:slug>/settings/audit/", account_views.audit_log_view, name="audit_log"),
    path("p/<slug:slug>/settings/export/", export_settings.score_export_settings, name="score_export_settings"),
    path("p/<slug:slug>/settings/retention/", account_views.project_retention_view, name="project_retention"),
    # OTLP/HTTP; the Langfuse SDK sends to /api/public/otel/v1/traces.
    path("v1/traces", trace_api.otlp_traces, name="otlp_traces"),
    path("v1/logs", trace_api.otlp_logs, name="otlp_logs"),
    path("api/public/otel/v1/traces", trace_api.otlp_traces, name="langfuse_otlp_traces"),
    path("api/public/otel/v1/logs", trace_api.otlp_logs, name="langfuse_otlp_logs"),
    # REST API.
    path("api/v1/traces", front_api.TracesEndpoint.as_view(), name="api_traces"),
    path("api/v1/traces/<str:trace_id>", front_api.TraceDetailEndpoint.as_view(), name="api_trace_detail"),
    path("api/v1/scores", eval_api.ScoresEndpoint.as_view(), name="api_scores"),
    path("api/public/scores", eval_api.LangfuseScoresEndpoint.as_view(), name="langfuse_scores"),
    path("api/v1/canary", canary_api.CanaryEndpoint.as_view(), name="api_canary"),
    path("api/v1/guard", guard_api.GuardEndpoint.as_view(), name="api_guard"),
    path("api/v1/slos", slo_api.SlosEndpoint.as_view(), name="api_slos"),
    path("api/v1/slos/<int:slo_id>", slo_api.SloDetailEndpoint.as_view(), name="api_slo_detail"),
    # Prometheus scrape endpoint, authenticated by a project key.
    path("metrics", slo_api.metrics, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "api/docs/",
        # The split view serves Swagger's start-up script as a file: the Content-Security-Policy forbids inline ones.
        SpectacularSwaggerSplitView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="api_docs",
    ),
    path("admin/", admin.site.urls),
    # Browsers ask for /favicon.ico where a page names no icon (JSON answers, /metrics); the static file's name is
    # hashed, so it is looked up per request.
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("favicon.svg")), name="favicon"),
]
