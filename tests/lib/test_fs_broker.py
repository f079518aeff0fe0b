"""The embedded default's broker (sre4ai_web/lib/fs_broker.py): a consumer never takes a half-written message."""

from __future__ import annotations

import json
import os
import queue as stdlib_queue
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from sre4ai_web.lib import fs_broker

ROOT = Path(__file__).resolve().parents[2]


def _connection(folder: Path) -> Connection:
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "processed_folder": str(folder.parent / "processed"),
        "control_folder": str(folder.parent / "control"),  # kombu's default is ./control
        "store_processed": False,
    }
    (folder.parent / "processed").mkdir(exist_ok=True)
    (folder.parent / "control").mkdir(exist_ok=True)
    return Connection("filesystem://", transport=fs_broker.Transport, transport_options=options)


def test_a_message_being_written_is_not_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A consumer polls while the producer is in the middle of writing: it finds nothing (kombu's own transport
    hands it the empty file, and the worker dies decoding it), then the whole message once written."""
    folder = tmp_path / "out"
    folder.mkdir()
    with _connection(folder) as producer_conn, _connection(folder) as consumer_conn:
        producer, consumer = producer_conn.default_channel, consumer_conn.default_channel
        seen_mid_write: list[Any] = []
        real_open = open

        class HookedFile:
            def __init__(self, file: Any) -> None:
                self.file = file

            def write(self, data: bytes) -> int:
                try:
                    seen_mid_write.append(consumer._get("jobs"))
                except stdlib_queue.Empty:
                    seen_mid_write.append(None)
                return int(self.file.write(data))

            def __enter__(self) -> HookedFile:
                return self

            def __exit__(self, *exc: object) -> None:
                self.file.close()

            def close(self) -> None:
                self.file.close()

        def hooked_open(path: str, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            file = real_open(path, mode, *args, **kwargs)
            return HookedFile(file) if "w" in mode and str(folder) in str(path) else file

        module = sys.modules[type(producer)._put.__module__]
        monkeypatch.setattr(module, "open", hooked_open, raising=False)
        # kombu's own transport locks the file while writing; the lock functions take the real file.
        monkeypatch.setattr(module, "lock", lambda *a: None, raising=False)
        monkeypatch.setattr(module, "unlock", lambda *a: None, raising=False)
        payload = {"body": "x" * 5000, "n": 1}
        producer._put("jobs", payload)
        monkeypatch.undo()

        assert seen_mid_write == [None]
        assert consumer._get("jobs") == payload
        with pytest.raises(stdlib_queue.Empty):
            consumer._get("jobs")
        assert os.listdir(folder) == []


def test_every_message_received_and_none_left(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    with _connection(folder) as conn:
        queue = conn.SimpleQueue("jobs")
        for n in range(5):
            queue.put({"n": n})
        received = []
        for _ in range(5):
            message = queue.get(timeout=1)
            received.append(message.payload["n"])
            message.ack()
        assert sorted(received) == [0, 1, 2, 3, 4]  # names sort by the millisecond, then at random
        assert not [name for name in os.listdir(folder) if name.endswith(".part")]


def test_filesystem_urls_mean_it(tmp_path: Path) -> None:
    """What the embedded default's web and worker processes connect with."""
    code = (
        "import django; django.setup()\n"
        "import json\n"
        "from sre4ai_web.celery import app\n"
        "with app.connection_for_write() as c:\n"
        "    print(json.dumps(type(c.transport).__module__))\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "sre4ai_web.settings",
        "CELERY_BROKER_URL": "filesystem://",
        "SRE4AI_VAR_DIR": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == "sre4ai_web.lib.fs_broker"
