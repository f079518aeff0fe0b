"""The scale-out run with faults (bench/scaleout.py, docs/operations.md "Running more than one node") in its short
form: 2 web nodes and 2 worker hosts in network namespaces, HAProxy in front (deploy/haproxy.cfg), RabbitMQ as the
broker; web1 and worker1 SIGKILLed under load; every acknowledged span stored, every stored trace scored once per
evaluator, no 5xx without Retry-After.

It takes 3–5 minutes on a 2-core machine (migrations, four nodes starting, scoring the backlog), so it runs only
when asked: ``SRE4AI_SCALEOUT=1``, as root, with ``ip``, ``haproxy`` and ``rabbitmqctl`` (a running RabbitMQ).
It is not part of ``make test``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import ROOT

MISSING = [tool for tool in ("ip", "haproxy", "rabbitmqctl") if shutil.which(tool) is None]


@pytest.mark.skipif(os.environ.get("SRE4AI_SCALEOUT") != "1", reason="slow (minutes): set SRE4AI_SCALEOUT=1")
@pytest.mark.skipif(os.geteuid() != 0 or bool(MISSING), reason=f"needs root and {MISSING or 'ip, haproxy'}")
def test_two_web_nodes_and_two_worker_hosts_survive_losing_one_of_each(tmp_path: Path) -> None:
    out = tmp_path / "scaleout.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "scaleout.py"),
            "--mode",
            "faults",
            "--timing",
            "short",
            "--duration",
            "20",
            "--concurrency",
            "2",
            "--window",
            "300",
            "--database",
            "sre4ai_scaleout_test",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert out.exists(), result.stdout[-5000:] + result.stderr[-5000:]
    faults = json.loads(out.read_text())["faults"]
    assert faults["events"]["web1_pids_killed"] >= 2  # the master and its workers
    assert faults["events"]["worker1_pids_killed"] >= 2
    assert faults["acked_spans"] > 0
    assert faults["acked_spans_not_stored"] == 0
    assert faults["scored_exactly_once"], faults["scoring"]
    assert faults["server_errors_without_retry_after"] == 0
    assert result.returncode == 0, result.stdout[-5000:]
