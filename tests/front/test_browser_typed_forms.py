"""Browser: the typed settings forms. On the evaluator page, grounding's threshold shows its current value and its
default; a bad value is refused beside the field, a good one saved; the advanced JSON view shows what was stored and
saves through the same model. On the channel form, choosing a type shows only its fields, the secret is a password
input, and editing the channel keeps the secret left empty. Playwright drives Debian's headless Chromium."""

from __future__ import annotations

import os
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from evals.models import EvaluatorConfig
from slos.models import Channel
from slos.transports import unseal_secrets
from tests import chromium
from tests.chromium import ARTIFACTS, CHROMIUM
from tests.conftest import PASSWORD, Tenant

# Shared fixtures: pytest finds a fixture by its name in the test's module.
browser = chromium.browser
page = chromium.page

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
    pytest.mark.django_db(transaction=True),
]

SECRET = "0123456789abcdef-shared-secret"


def login(page: Page, live_server: Any) -> None:
    page.goto(live_server.url + "/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_evaluator_parameters_as_inputs_and_as_json(page: Page, live_server: Any, tenant: Tenant) -> None:
    login(page, live_server)
    page.goto(live_server.url + "/p/acme/evaluators/")
    form = page.locator("#ev-grounding")
    threshold = form.locator("input[name=param-threshold]")
    expect(threshold).to_have_value("0.5")
    expect(form.locator("[data-field=threshold]")).to_contain_text("default 0.5")
    expect(form.locator("[data-field=threshold]")).to_contain_text("Pass when the probability")
    expect(form.locator("details.advanced")).not_to_have_attribute("open", "")

    threshold.fill("1.5")
    form.locator("button[value=fields]").click()
    expect(page.locator("#ev-grounding [data-field=threshold] .error")).to_contain_text(
        "Input should be less than or equal to 1"
    )
    assert not EvaluatorConfig.objects.exists()
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#ev-grounding").screenshot(path=str(ARTIFACTS / "typed-evaluator-error.png"))

    form = page.locator("#ev-grounding")
    form.locator("input[name=param-threshold]").fill("0.7")
    form.locator("select[name=param-claims]").select_option("specifics")
    form.locator("input[name=param-flag_specifics]").uncheck()
    form.locator("input[name=param-threshold]").press("Enter")  # Enter saves the fields, not the JSON
    expect(page.locator("ul.messages")).to_contain_text("Saved grounding for the project")
    assert EvaluatorConfig.objects.get().params == {"threshold": 0.7, "flag_specifics": False, "claims": "specifics"}
    form = page.locator("#ev-grounding")
    expect(form.locator("input[name=param-threshold]")).to_have_value("0.7")
    expect(form.locator("[data-field=threshold]")).to_contain_text("default 0.5")

    # The advanced view holds what was stored, and saves through the same model.
    form.locator("details.advanced summary").click()
    params = form.locator("textarea[name=params]")
    assert '"threshold": 0.7' in params.input_value()
    params.fill('{"threshold": 0.6}')
    form.locator("button[value=json]").click()
    assert EvaluatorConfig.objects.get().params == {"threshold": 0.6}
    expect(page.locator("#ev-grounding input[name=param-threshold]")).to_have_value("0.6")
    expect(page.locator("#ev-grounding input[name=param-flag_specifics]")).to_be_checked()
    page.screenshot(path=str(ARTIFACTS / "typed-evaluators.png"), full_page=True)
    page.locator("#ev-judge").screenshot(path=str(ARTIFACTS / "typed-evaluator-judge.png"))


def test_channel_settings_by_type_with_a_kept_secret(page: Page, live_server: Any, tenant: Tenant) -> None:
    login(page, live_server)
    page.goto(live_server.url + "/p/acme/channels/")
    expect(page.locator("fieldset[data-kind=webhook]")).to_be_visible()
    expect(page.locator("fieldset[data-kind=slack]")).to_be_hidden()
    page.select_option("select[name=kind]", "pagerduty")
    expect(page.locator("fieldset[data-kind=webhook]")).to_be_hidden()
    expect(page.locator("fieldset[data-kind=pagerduty] input[name=pagerduty-events_url]")).to_have_value(
        "https://events.pagerduty.com/v2/enqueue"
    )
    page.select_option("select[name=kind]", "webhook")
    page.fill("input[name=name]", "oncall <hook>")
    page.fill("input[name=webhook-url]", "https://hooks.example.com/x")
    expect(page.locator("input[name=webhook-secret]")).to_have_attribute("type", "password")
    page.fill("input[name=webhook-secret]", SECRET)
    page.locator("fieldset[data-kind=webhook] input[value=ticket]").uncheck()
    page.screenshot(path=str(ARTIFACTS / "typed-channel-form.png"), full_page=True)
    page.click("button[value=fields]")
    expect(page.locator("section.channel h2").first).to_contain_text("oncall <hook>")
    channel = Channel.objects.get()
    assert unseal_secrets("webhook", channel.config)["secret"] == SECRET
    assert channel.config["severities"] == ["page"]

    page.click("section.channel >> text=Edit")
    expect(page.locator("input[name=webhook-secret]")).to_have_value("")
    expect(page.locator("input[name=webhook-secret]")).to_have_attribute("placeholder", "stored: leave empty to keep")
    assert SECRET not in page.content()
    page.screenshot(path=str(ARTIFACTS / "typed-channel-edit.png"), full_page=True)
    page.fill("input[name=webhook-url]", "https://hooks.example.com/y")
    page.click("button[value=fields]")
    expect(page).to_have_url(f"{live_server.url}/p/acme/channels/")
    channel.refresh_from_db()
    assert unseal_secrets("webhook", channel.config) == {
        "url": "https://hooks.example.com/y", "secret": SECRET, "severities": ["page"]
    }  # fmt: skip
