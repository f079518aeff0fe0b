"""The Celery app and the whole beat schedule (one place to read what runs when)."""

import gc
import os

from celery import Celery, signals
from kombu.transport import TRANSPORT_ALIASES

from sre4ai_web.beat import mark_schedule

# filesystem:// (the embedded default's broker) means kombu's transport with each message renamed into place whole:
# kombu's own let a worker read a half-written one and stop (sre4ai_web/lib/fs_broker.py).
TRANSPORT_ALIASES["filesystem"] = "sre4ai_web.lib.fs_broker:Transport"

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sre4ai_web.settings")

# Tasks sent by beat run one copy at a time, however many beats run (sre4ai_web/beat.py).
app = Celery("sre4ai", task_cls="sre4ai_web.beat:SingleRunTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Named queues: cheap evaluators, slow LLM-judge calls and rescoring jobs never wait on each other. Work that
# waits on someone else's server (the judge, probe targets, notification receivers) has a queue of its own per
# kind, so a slow endpoint delays only its own kind and never scoring (docs/security.md).
app.conf.task_routes = {
    "evals.tasks.score_traces": {"queue": "scoring"},
    "evals.tasks.judge_traces": {"queue": "judge"},
    "evals.tasks.rescore_step": {"queue": "backfill"},
    "rollups.tasks.process_dirty": {"queue": "backfill"},
    "evals.tasks.drift_run": {"queue": "backfill"},
    "evals.tasks.drift_schedule": {"queue": "backfill"},
    "evals.tasks.probe_run": {"queue": "probes"},
    "evals.tasks.probe_schedule": {"queue": "backfill"},
    "evals.tasks.runs_requeue": {"queue": "backfill"},
    "slos.tasks.sli_history": {"queue": "backfill"},
    "slos.tasks.dispatch": {"queue": "notify"},
    "evals.tasks.scores_export": {"queue": "export"},  # the OTLP collector of docs/scoring.md
    "evals.tasks.scores_export_test": {"queue": "export"},
    "accounts.tasks.retention_sweep": {"queue": "backfill"},
    "accounts.tasks.partitions_upkeep": {"queue": "backfill"},
}

# How often beat looks for work to send again (docs/security.md, "Recovery"); the fault tests shorten it.
RECOVERY_SWEEP_SECONDS = float(os.environ.get("SRE4AI_RECOVERY_SWEEP_SECONDS", "15"))
# How often beat looks for golden probes that are due; the probe test shortens it (beat's first tick of an interval
# comes one interval after it starts).
PROBE_SCHEDULE_SECONDS = float(os.environ.get("SRE4AI_PROBE_SCHEDULE_SECONDS", "60"))

app.conf.beat_schedule = {
    # Late spans and scores mark minutes dirty; their rollups are recomputed within seconds.
    "rollups-process-dirty": {"task": "rollups.tasks.process_dirty", "schedule": 10.0},
    # Every service with traffic: the last 24 h against the 7 days before, once an hour.
    "drift-schedule": {"task": "evals.tasks.drift_schedule", "schedule": 3600.0},
    # Golden probes that are due (every N minutes or on their cron expression) start within a minute.
    "probe-schedule": {"task": "evals.tasks.probe_schedule", "schedule": PROBE_SCHEDULE_SECONDS},
    # SLO alert rules at the last complete minute; state changes go to the notification outbox.
    "slos-evaluate": {"task": "slos.tasks.evaluate", "schedule": 60.0},
    # Notifications are sent on commit; this picks up retries whose backoff has passed.
    "slos-dispatch": {"task": "slos.tasks.dispatch", "schedule": 15.0},
    # Spend budgets: a level crossed in the current window is alerted once (and blocks guard calls of that user).
    "budgets-evaluate": {"task": "slos.tasks.budgets_evaluate", "schedule": 60.0},
    # Scoring (and judging) of ingested traces whose message is missing (the broker was down or lost it) or whose
    # worker died mid-task is queued again: within about a minute of the fault (sre4ai_web/lib/claims.py).
    "traces-requeue-followups": {"task": "traces.tasks.followups_requeue", "schedule": RECOVERY_SWEEP_SECONDS},
    # The same for probe, rescoring and drift runs: they resume where they stopped.
    "evals-requeue-runs": {"task": "evals.tasks.runs_requeue", "schedule": RECOVERY_SWEEP_SECONDS},
    # Guard decisions whose recording could not be queued after the call (broker down) are recorded from the outbox.
    "guard-record-decisions": {"task": "guard.tasks.record_decisions", "schedule": 30.0},
    # Each project's raw rows past its raw retention and aggregates past its aggregate retention, in short batches.
    "retention-sweep": {"task": "accounts.tasks.retention_sweep", "schedule": 300.0},
    # PostgreSQL: the partitions of the coming week (rollups: months) exist before their first row
    # (sre4ai_web/lib/partitions.py); ingest makes any other it needs on demand.
    "partitions-upkeep": {"task": "accounts.tasks.partitions_upkeep", "schedule": 3600.0},
}
mark_schedule(app.conf.beat_schedule)


@signals.worker_process_init.connect  # a prefork child, after the fork
@signals.worker_ready.connect  # the solo and thread pools run tasks in the main process
def _freeze_loaded_objects(**_: object) -> None:
    """Keep everything loaded at start (Django, the apps, numpy, scipy) out of the cyclic GC's full passes,
    as wsgi.py does for the web workers."""
    gc.freeze()
