"""A golden dataset and an HTTP probe against the fake LLM app (tests/fake_llm_app.py), run once in-process."""

from __future__ import annotations

from typing import Any

from evals.datasets import ItemData
from evals.models import Dataset, Probe, ProbeRun
from evals.probes.runs import probe_run_create, probe_run_execute
from evals.services import dataset_create, dataset_items_add, probe_save
from tests.conftest import Tenant
from tests.fake_llm_app import FakeLlmApp

QUESTIONS = {
    "How long is the refund window?": "30 days",
    "What is the capital of France?": "Paris",
    "What is six times seven?": "42",
}


def golden(tenant: Tenant, questions: dict[str, str] = QUESTIONS, name: str = "faq") -> Dataset:
    dataset = dataset_create(project=tenant.project, name=name, user=tenant.user)
    dataset_items_add(dataset=dataset, items=[ItemData(input=q, expected=a) for q, a in questions.items()])
    return dataset


def http_probe(tenant: Tenant, dataset: Dataset, app: FakeLlmApp, **config: Any) -> Probe:
    target = {"url": f"{app.url}/ask", "body_template": {"question": "{{input_text}}"}, "answer_path": "answer",
              "timeout_seconds": 5.0, **config}  # fmt: skip
    probe = Probe(project=tenant.project, name="faq probe", dataset=dataset, service="support-bot",
                  target_kind="http_endpoint", target_config=target, evaluators=["reference"])  # fmt: skip
    return probe_save(probe=probe, user=tenant.user)


def run_once(probe: Probe) -> ProbeRun:
    return probe_run_execute(run_id=probe_run_create(probe=probe).pk)
