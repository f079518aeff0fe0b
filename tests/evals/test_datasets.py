"""Golden datasets: CSV and JSONL parsing with per-row errors, all-or-nothing imports, export round trips, items
typed in or added from a trace page, escaping, roles and project isolation."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.models import Role
from accounts.services import membership_set, user_create
from evals.datasets import ItemData, export_csv, export_jsonl, parse_csv, parse_file, parse_jsonl
from evals.models import Dataset, DatasetItem
from evals.services import dataset_create, dataset_items_add
from tests import otlp_build as ob
from tests.conftest import PASSWORD, Tenant
from traces.models import Trace

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Refund window?"}]


def login(client: Client, tenant: Tenant) -> Client:
    assert client.login(username=tenant.user.username, password=PASSWORD)
    return client


# --- parsing (pure) --------------------------------------------------------------------------------------


def test_jsonl_items_text_and_chat_with_context_and_tags() -> None:
    text = "\n".join([
        json.dumps({"input": "What is 6 x 7?", "expected": "42", "tags": ["math", " math ", "easy"]}),
        "",
        json.dumps({"input": CHAT, "expected": "30 days", "context": ["Refunds within 30 days."]}),
    ])  # fmt: skip
    items, errors = parse_jsonl(text)
    assert errors == []
    assert items == [
        ItemData(input="What is 6 x 7?", expected="42", tags=("math", "easy")),
        ItemData(input=CHAT, expected="30 days", context=("Refunds within 30 days.",)),
    ]


def test_jsonl_reports_every_bad_row_by_line_number() -> None:
    text = "\n".join([
        json.dumps({"input": "ok", "expected": "fine"}),
        "{not json",
        json.dumps(["a list"]),
        json.dumps({"expected": "no input"}),
        json.dumps({"input": "x", "answer": "typo"}),
        json.dumps({"input": [{"role": "robot", "content": "hi"}]}),
        json.dumps({"input": [{"role": "system", "content": "only system"}]}),
        json.dumps({"input": "   "}),
    ])  # fmt: skip
    items, errors = parse_jsonl(text)
    assert len(items) == 1
    by_row = {e.row: e.message for e in errors}
    assert sorted(by_row) == [2, 3, 4, 5, 6, 7, 8]
    assert "not valid JSON" in by_row[2]
    assert "JSON object" in by_row[3]
    assert by_row[4].startswith("input: Field required")
    assert "answer: unknown field (allowed: input, expected, context, tags)" in by_row[5]
    assert "role" in by_row[6]
    assert "at least one message with role 'user'" in by_row[7]
    assert "input is empty" in by_row[8]


def test_csv_columns_chat_cells_context_and_tags() -> None:
    rows = [
        ["What is 6 x 7?", "42", "", "math, easy"],
        [json.dumps(CHAT), "30 days", json.dumps(["Doc one.", "Doc two."]), ""],
        ["[Urgent] where is my order?", "", "A single document, with a comma.", ""],
    ]
    text = "input,expected,context,tags\n" + "".join(
        ",".join('"' + c.replace('"', '""') + '"' for c in r) + "\n" for r in rows
    )
    items, errors = parse_csv(text)
    assert errors == []
    assert items[0] == ItemData(input="What is 6 x 7?", expected="42", tags=("math", "easy"))
    assert items[1].input == CHAT and items[1].context == ("Doc one.", "Doc two.")
    assert items[2].input == "[Urgent] where is my order?"
    assert items[2].context == ("A single document, with a comma.",)


def test_csv_header_and_row_errors() -> None:
    assert [str(e) for e in parse_csv("question,expected\nhi,there\n")[1]] == [
        "row 1: the header row must name an 'input' column (columns: input, expected, context, tags)"
    ]
    assert "unknown column 'answer'" in parse_csv("input,answer\nhi,there\n")[1][0].message
    items, errors = parse_csv('input,expected\nok,fine\n,empty input\n"a","b","extra"\n')
    assert len(items) == 1
    assert [(e.row, e.message) for e in errors] == [
        (3, "input: input is empty"),
        (4, "more cells than the 2 columns of the header"),
    ]
    assert parse_csv("input,expected\n")[1][0].message == "the file has no items"


def test_file_decoding_and_format_choice() -> None:
    assert parse_file("faq.csv", "\ufeffinput,expected\nhé,ok\n".encode())[0][0].input == "hé"  # BOM tolerated
    assert "not UTF-8" in parse_file("faq.csv", b"input\n\xff\xfe\n")[1][0].message
    assert "should end in .csv or .jsonl" in parse_file("faq.txt", b"input\nx\n")[1][0].message
    assert parse_file("faq.txt", b'{"input": "x"}\n', "jsonl")[0][0].input == "x"


def test_export_round_trips_through_both_formats() -> None:
    items = [
        ItemData(input='Plain, with "quotes"\nand a newline', expected="42", tags=("a", "b")),
        ItemData(input=CHAT, expected="30 days", context=("Doc one.", "Doc, two.")),
        ItemData(input="<script>alert(1)</script>"),
    ]
    assert parse_jsonl(export_jsonl(items)) == (items, [])
    assert parse_csv(export_csv(items)) == (items, [])


# --- pages -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_import_is_all_or_nothing_and_lists_the_row_errors(client: Client, tenant: Tenant) -> None:
    dataset = dataset_create(project=tenant.project, name="faq", user=tenant.user)
    login(client, tenant)
    url = f"/p/acme/datasets/{dataset.pk}/"
    bad = b'{"input": "good row", "expected": "fine"}\n{"input": "<b>bold</b>", "expected": 5}\n{oops\n'
    response = client.post(url, {"action": "import", "file": SimpleUploadedFile("faq.jsonl", bad)})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Nothing was imported" in html
    assert "row 2: expected: Input should be a valid string" in html
    assert "row 3: not valid JSON" in html
    assert DatasetItem.objects.count() == 0

    good = b'{"input": "good row", "expected": "fine"}\n{"input": "second", "tags": ["x"]}\n'
    response = client.post(url, {"action": "import", "file": SimpleUploadedFile("faq.jsonl", good)})
    assert response.status_code == 302
    assert list(DatasetItem.objects.values_list("input", flat=True)) == ["good row", "second"]

    exported = client.get(f"/p/acme/datasets/{dataset.pk}/export.csv")
    assert exported["Content-Disposition"] == 'attachment; filename="faq.csv"'
    assert [i.input for i in parse_csv(exported.content.decode())[0]] == ["good row", "second"]
    assert parse_jsonl(client.get(f"/p/acme/datasets/{dataset.pk}/export.jsonl").content.decode())[0][1].tags == ("x",)


@pytest.mark.django_db
def test_create_dataset_and_add_an_item_with_form_errors(client: Client, tenant: Tenant) -> None:
    login(client, tenant)
    response = client.post("/p/acme/datasets/", {"name": "faq"})
    dataset = Dataset.objects.get(project=tenant.project, name="faq")
    assert response["Location"] == f"/p/acme/datasets/{dataset.pk}/"
    assert "already exists" in client.post("/p/acme/datasets/", {"name": "faq"}).content.decode()

    url = f"/p/acme/datasets/{dataset.pk}/"
    bad = client.post(url, {"action": "add", "input": json.dumps([{"role": "system", "content": "x"}])})
    assert bad.status_code == 200 and "at least one message with role" in bad.content.decode()
    client.post(url, {"action": "add", "input": "<img src=x onerror=alert(1)>", "expected": "42",
                      "context": "Doc one\n---\nDoc two --- still two", "tags": "a, b"})  # fmt: skip
    item = DatasetItem.objects.get()
    assert item.context == ["Doc one", "Doc two --- still two"] and item.tags == ["a", "b"]
    html = client.get(url).content.decode()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


@pytest.mark.django_db
def test_add_to_dataset_from_a_trace_page(client: Client, tenant: Tenant) -> None:
    dataset = dataset_create(project=tenant.project, name="faq", user=tenant.user)
    trace_id = ob.new_trace_id()
    root = ob.span(trace_id, name="answer", attributes={"input.value": "How long do refunds take?",
                                                    "output.value": "Refunds take 30 days."})  # fmt: skip
    body = ob.request([root], resource={"service.name": "support-bot"}).SerializeToString()
    assert client.post("/v1/traces", data=body, content_type="application/x-protobuf",
                       headers=tenant.bearer).status_code == 200  # fmt: skip
    trace = Trace.objects.get()
    login(client, tenant)
    detail = client.get(f"/p/acme/traces/{trace.trace_id}/").content.decode()
    assert f'href="/p/acme/traces/{trace.trace_id}/to-dataset/"' in detail

    url = f"/p/acme/traces/{trace.trace_id}/to-dataset/"
    form = client.get(url).content.decode()
    assert "How long do refunds take?" in form and "Refunds take 30 days." in form
    # The answer becomes the expected answer, corrected by the person before saving.
    response = client.post(url, {"dataset": dataset.pk, "input": "How long do refunds take?", "expected": "14 days"})
    assert response.status_code == 302
    item = DatasetItem.objects.get()
    assert (item.input, item.expected, item.source_trace_id) == ("How long do refunds take?", "14 days", trace.trace_id)
    assert "Choose a dataset" in client.post(url, {"dataset": "", "input": "x"}).content.decode()


@pytest.mark.django_db
def test_viewers_read_editors_write(client: Client, tenant: Tenant) -> None:
    dataset = dataset_create(project=tenant.project, name="faq", user=tenant.user)
    viewer = user_create(username="vera", password=PASSWORD)
    membership_set(project=tenant.project, user=viewer, role=Role.VIEWER)
    assert client.login(username="vera", password=PASSWORD)
    assert client.get(f"/p/acme/datasets/{dataset.pk}/").status_code == 200
    assert client.post("/p/acme/datasets/", {"name": "mine"}).status_code == 403
    assert client.post(f"/p/acme/datasets/{dataset.pk}/", {"action": "add", "input": "x"}).status_code == 403
    assert DatasetItem.objects.count() == 0 and Dataset.objects.count() == 1


@pytest.mark.django_db
def test_another_projects_dataset_is_a_404(client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    theirs = dataset_create(project=other_tenant.project, name="secret-faq", user=other_tenant.user)
    dataset_items_add(dataset=theirs, items=[ItemData(input="their question")])
    login(client, tenant)
    for path in (f"/p/acme/datasets/{theirs.pk}/", f"/p/acme/datasets/{theirs.pk}/export.jsonl",
                 f"/p/globex/datasets/{theirs.pk}/"):  # fmt: skip
        assert client.get(path).status_code == 404
    assert client.post(f"/p/acme/datasets/{theirs.pk}/", {"action": "add", "input": "x"}).status_code == 404
    assert "secret-faq" not in client.get("/p/acme/datasets/").content.decode()
    assert DatasetItem.objects.filter(dataset=theirs).count() == 1
