"""Typed settings forms: each evaluator's Params and each transport's Config declares its fields once, and the
evaluator settings and channel forms render them as inputs (label, help, current value, default, input by type;
secrets as password inputs kept when left empty), read them back through the same pydantic model as the raw JSON
"advanced" view, and put the model's messages beside the field they are about."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from django.test import Client

from accounts.models import Role
from accounts.services import membership_set
from evals.evaluators.grounding import GroundingParams
from evals.evaluators.judge import JudgeParams
from evals.evaluators.output_format import OutputFormatParams
from evals.evaluators.pii import PiiParams
from evals.evaluators.registry import REGISTRY
from evals.models import EvaluatorConfig
from slos.models import Channel
from slos.transports import REGISTRY as TRANSPORTS
from slos.transports import unseal_secrets
from slos.transports.pagerduty import DEFAULT_EVENTS_URL
from slos.transports.webhook import WebhookConfig
from sre4ai_web.lib import typed_form
from tests.conftest import PASSWORD, Tenant

pytestmark = pytest.mark.django_db

SECRET = "a-very-long-shared-secret"
ROUTING_KEY = "0123456789abcdef0123456789abcdef"


def login(user: str = "alice") -> Client:
    client = Client()
    assert client.login(username=user, password=PASSWORD)
    return client


def specs(model: Any, **kwargs: Any) -> dict[str, typed_form.FieldSpec]:
    return {s.name: s for s in typed_form.field_specs(model, **kwargs)}


def typed_post(evaluator: str, **values: Any) -> dict[str, Any]:
    """What the settings page posts for an evaluator when its inputs hold their defaults, except ``values``."""
    post: dict[str, Any] = {"evaluator": evaluator, "enabled": "on", "sampling_rate": "1", "mode": "fields"}
    for spec in typed_form.field_specs(REGISTRY[evaluator].Params):
        value = values.get(spec.name, spec.default)
        if spec.widget == "checkbox":
            if value:
                post["param-" + spec.name] = "on"
        elif spec.widget == "choices":
            post["param-" + spec.name] = list(value)
        else:
            post["param-" + spec.name] = typed_form.shown(spec, value)
    return post


def field_html(page: str, name: str) -> str:
    """The markup of one typed field (its div)."""
    match = re.search(rf'<div class="tf [^"]*" data-field="{name}">(.*?)</div>', page, re.S)
    assert match, f"no field {name}"
    return match[1]


# --- what the models declare -----------------------------------------------------------------------------------


def test_each_field_gets_an_input_by_its_type_with_its_label_help_default_and_bounds() -> None:
    grounding = specs(GroundingParams)
    threshold = grounding["threshold"]
    assert (threshold.widget, threshold.minimum, threshold.maximum, threshold.step) == ("number", "0.0", "1.0", "any")
    assert threshold.label == "Threshold" and threshold.help.startswith("Pass when the probability")
    assert typed_form.default_text(threshold) == "0.5"
    assert (grounding["max_sentences"].widget, grounding["max_sentences"].step) == ("number", "1")
    assert grounding["flag_specifics"].widget == "checkbox"
    assert typed_form.default_text(grounding["flag_specifics"]) == "on"
    assert (grounding["claims"].widget, grounding["claims"].choices) == ("select", ("words", "specifics"))
    pii = specs(PiiParams)
    assert (pii["kinds"].widget, pii["kinds"].choices) == ("choices", ("email", "phone", "card", "iban"))
    assert (pii["allow"].widget, typed_form.default_text(pii["allow"])) == ("lines", "none")
    schema = specs(OutputFormatParams)["json_schema"]
    assert (schema.widget, schema.nullable) == ("json", True)
    judge = specs(JudgeParams)
    assert (judge["temperature"].widget, judge["temperature"].nullable) == ("number", True)
    assert judge["input_cost_per_million"].widget == "number"  # Decimal | None
    webhook = specs(WebhookConfig, secret=("secret",))
    assert (webhook["url"].widget, webhook["url"].required) == ("text", True)
    assert (webhook["secret"].widget, webhook["severities"].widget) == ("password", "choices")
    for transport in TRANSPORTS.values():  # every transport and evaluator field has an input and words for it
        assert all(s.help for s in typed_form.field_specs(transport.Config, secret=transport.secret_fields))
    for evaluator in REGISTRY.values():
        assert all(s.widget for s in typed_form.field_specs(evaluator.Params))


# --- evaluator settings ------------------------------------------------------------------------------------------


def test_the_settings_page_shows_each_parameter_with_its_current_value_and_default(tenant: Tenant) -> None:
    client = login()
    page = client.get("/p/acme/evaluators/").content.decode()
    threshold = field_html(page, "threshold")  # grounding's comes first
    assert 'name="param-threshold"' in threshold and 'value="0.5"' in threshold
    assert 'type="number"' in threshold and 'min="0.0"' in threshold and 'max="1.0"' in threshold
    assert "default 0.5" in threshold and "Pass when the probability" in threshold
    EvaluatorConfig.objects.create(project=tenant.project, service="", evaluator="grounding", enabled=True,
                                   params={"threshold": 0.7, "claims": "specifics"}, sampling_rate=1.0)  # fmt: skip
    page = client.get("/p/acme/evaluators/").content.decode()
    grounding = page.split('id="ev-grounding"', 1)[1].split("</form>", 1)[0]
    threshold = field_html(grounding, "threshold")
    assert 'value="0.7"' in threshold and "default 0.5" in threshold  # the current value, and what it would be
    assert '<option value="specifics" selected>' in field_html(grounding, "claims")
    assert 'name="param-flag_specifics" id="id_param-flag_specifics" checked' in grounding
    # Viewers see the same values, in inputs they cannot use.
    membership_set(project=tenant.project, user=tenant.user, role=Role.VIEWER)
    viewer_page = client.get("/p/acme/evaluators/").content.decode()
    assert 'value="0.7" step="any" min="0.0" max="1.0" disabled' in viewer_page


def test_typed_inputs_save_only_what_differs_from_the_defaults(tenant: Tenant) -> None:
    client = login()
    response = client.post("/p/acme/evaluators/", typed_post("grounding", threshold="0.70", flag_specifics=False))
    assert response.status_code == 302
    row = EvaluatorConfig.objects.get()
    assert row.params == {"threshold": 0.7, "flag_specifics": False}
    # Lists and choices: one entry per line, checkboxes per value.
    post = typed_post("pii", kinds=["email", "iban"], allow=[])
    post["param-allow"] = "support@acme.com\n\n  acme.com  \n"
    assert client.post("/p/acme/evaluators/", post).status_code == 302
    assert EvaluatorConfig.objects.get(evaluator="pii").params == {
        "kinds": ["email", "iban"], "allow": ["support@acme.com", "acme.com"]
    }  # fmt: skip
    # An empty optional number is None ("not sent"), not the default.
    post = typed_post("judge")
    post["param-temperature"] = ""
    assert client.post("/p/acme/evaluators/", post).status_code == 302
    assert EvaluatorConfig.objects.get(evaluator="judge").params == {"temperature": None}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("threshold", "abc", "Input should be a valid number"),
        ("threshold", "1.5", "Input should be less than or equal to 1"),
        ("max_sentences", "2.5", "Input should be a valid integer"),
        ("claims", "everything", "Input should be 'words' or 'specifics'"),
    ],
)
def test_a_bad_value_is_a_field_error_not_a_500(tenant: Tenant, field: str, value: str, message: str) -> None:
    response = login().post("/p/acme/evaluators/", typed_post("grounding", **{field: value}))
    assert response.status_code == 400
    page = response.content.decode()
    grounding = page.split('id="ev-grounding"', 1)[1].split("</form>", 1)[0]
    errors = re.findall(r'<small class="error" role="alert">(.*?)</small>', field_html(grounding, field))
    assert any(message in html.unescape(e) for e in errors), errors
    assert "Some grounding parameters are not valid" in grounding
    if field != "claims":
        assert f'value="{value}"' in field_html(grounding, field)  # what was typed stays, to be corrected
    assert not EvaluatorConfig.objects.exists()


def test_a_json_schema_field_that_does_not_parse_is_a_field_error(tenant: Tenant) -> None:
    post = typed_post("output_format")
    post["param-json_schema"] = "{not json"
    response = login().post("/p/acme/evaluators/", post)
    assert response.status_code == 400
    form = response.content.decode().split('id="ev-output_format"', 1)[1].split("</form>", 1)[0]
    assert "not valid JSON" in field_html(form, "json_schema")
    post["param-json_schema"] = json.dumps({"type": "object", "required": ["answer"]})
    assert login().post("/p/acme/evaluators/", post).status_code == 302
    assert EvaluatorConfig.objects.get().params == {"json_schema": {"type": "object", "required": ["answer"]}}


def test_the_advanced_json_view_is_validated_and_stored_the_same_way(tenant: Tenant) -> None:
    client = login()
    typed = client.post("/p/acme/evaluators/", typed_post("grounding", threshold="0.7", claims="specifics"))
    assert typed.status_code == 302
    by_fields = EvaluatorConfig.objects.get().params
    EvaluatorConfig.objects.all().delete()
    post = {**typed_post("grounding"), "mode": "json",
            "params": json.dumps({"threshold": 0.7, "claims": "specifics", "max_sentences": 300})}  # fmt: skip
    assert client.post("/p/acme/evaluators/", post).status_code == 302
    assert EvaluatorConfig.objects.get().params == by_fields == {"threshold": 0.7, "claims": "specifics"}
    # The same mistake, the same words, named by field; the JSON view opens to show it.
    bad = client.post("/p/acme/evaluators/", {**post, "params": '{"threshold": 1.5}'})
    assert bad.status_code == 400
    form = bad.content.decode().split('id="ev-grounding"', 1)[1].split("</form>", 1)[0]
    assert "Invalid params for grounding: threshold: Input should be less than or equal to 1" in html.unescape(form)
    assert '<details class="advanced" open>' in form
    assert EvaluatorConfig.objects.get().params == by_fields


def test_stored_values_are_shown_as_text(tenant: Tenant) -> None:
    EvaluatorConfig.objects.create(project=tenant.project, service="", evaluator="pii", enabled=True,
                                   params={"allow": ["<script>alert(1)</script>"]}, sampling_rate=1.0)  # fmt: skip
    page = login().get("/p/acme/evaluators/").content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- channels --------------------------------------------------------------------------------------------------


def test_a_channel_is_added_from_typed_fields_and_its_secret_is_never_shown(tenant: Tenant) -> None:
    client = login()
    page = client.get("/p/acme/channels/").content.decode()
    assert '<fieldset class="kind-fields" data-kind="pagerduty">' in page
    assert f'value="{DEFAULT_EVENTS_URL}"' in field_html(page.split('data-kind="pagerduty"')[1], "events_url")
    assert 'type="password" name="webhook-secret"' in page
    response = client.post("/p/acme/channels/", {
        "name": "oncall", "kind": "webhook", "mode": "fields", "webhook-url": "https://hooks.example.com/x",
        "webhook-secret": SECRET, "webhook-severities": ["page"],
        "slack-webhook_url": "ignored: another type's input",
    })  # fmt: skip
    assert response.status_code == 302
    channel = Channel.objects.get()
    assert unseal_secrets("webhook", channel.config) == {
        "url": "https://hooks.example.com/x", "secret": SECRET, "severities": ["page"]
    }  # fmt: skip
    edit = client.get(f"/p/acme/channels/{channel.pk}/edit/").content.decode()
    assert SECRET not in edit and 'placeholder="stored: leave empty to keep"' in edit
    assert 'value="https://hooks.example.com/x"' in edit
    assert re.search(r'name="webhook-severities" value="page" checked', edit)
    assert not re.search(r'name="webhook-severities" value="ticket" checked', edit)


def test_an_empty_secret_keeps_the_stored_one_and_a_new_one_replaces_it(tenant: Tenant) -> None:
    client = login()
    client.post("/p/acme/channels/", {"name": "pd", "kind": "pagerduty", "mode": "fields",
                                      "pagerduty-routing_key": ROUTING_KEY, "pagerduty-severities": ["page", "ticket"],
                                      "pagerduty-events_url": DEFAULT_EVENTS_URL})  # fmt: skip
    channel = Channel.objects.get()
    edit = {"name": "pager", "kind": "pagerduty", "mode": "fields", "pagerduty-routing_key": "",
            "pagerduty-severities": ["page"], "pagerduty-events_url": DEFAULT_EVENTS_URL}  # fmt: skip
    assert client.post(f"/p/acme/channels/{channel.pk}/edit/", edit).status_code == 302
    channel.refresh_from_db()
    assert channel.name == "pager"
    assert unseal_secrets("pagerduty", channel.config)["routing_key"] == ROUTING_KEY
    assert channel.config["severities"] == ["page"]
    new_key = "f" * 32
    client.post(f"/p/acme/channels/{channel.pk}/edit/", {**edit, "pagerduty-routing_key": new_key})
    channel.refresh_from_db()
    assert unseal_secrets("pagerduty", channel.config)["routing_key"] == new_key
    # A new channel has nothing to keep: the key is required.
    missing = client.post("/p/acme/channels/", {**edit, "name": "second"})
    assert missing.status_code == 400
    assert "Field required" in field_html(missing.content.decode().split('data-kind="pagerduty"')[1], "routing_key")


@pytest.mark.parametrize(
    ("post", "field", "message"),
    [
        ({"kind": "webhook", "webhook-url": "ftp://x"}, "url", "the webhook URL must start with https:// or http://"),
        ({"kind": "webhook", "webhook-url": "https://h.example.com", "webhook-secret": "short"}, "secret",
         "the secret must be at least 16 characters long (got 5)"),
        ({"kind": "email", "email-to": "oncall@example.com\nnot-an-address"}, "to",
         "not a valid email address: not-an-address"),
        ({"kind": "slack", "slack-webhook_url": "https://hooks.slack.com/x"}, "severities",
         'choose at least one severity ("page" or "ticket")'),
    ],
)  # fmt: skip
def test_channel_field_errors_are_shown_beside_the_field(
    tenant: Tenant, post: dict[str, str], field: str, message: str
) -> None:
    severities = {} if field == "severities" else {f"{post['kind']}-severities": ["page"]}
    response = login().post("/p/acme/channels/", {"name": "c", "mode": "fields", **severities, **post})
    assert response.status_code == 400
    fieldset = response.content.decode().split(f'data-kind="{post["kind"]}">', 1)[1].split("</fieldset>", 1)[0]
    assert message in html.unescape(field_html(fieldset, field))
    assert not Channel.objects.exists()


def test_the_json_view_makes_the_same_channel_as_the_fields(tenant: Tenant) -> None:
    client = login()
    client.post("/p/acme/channels/", {"name": "a", "kind": "email", "mode": "fields",
                                      "email-to": "a@example.com\nb@example.com", "email-severities": ["ticket"]})  # fmt: skip
    client.post("/p/acme/channels/", {"name": "b", "kind": "email", "mode": "json",
                                      "config": '{"to": ["a@example.com", "b@example.com"], "severities": ["ticket"]}'})  # fmt: skip
    a, b = Channel.objects.order_by("name")
    assert a.config == b.config == {"to": ["a@example.com", "b@example.com"], "severities": ["ticket"]}
    bad = client.post("/p/acme/channels/", {"name": "c", "kind": "email", "mode": "json", "config": '{"to": []}'})
    assert bad.status_code == 400
    assert "Invalid Email settings: to: add at least one email address" in html.unescape(bad.content.decode())
