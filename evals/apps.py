from django.apps import AppConfig


class EvalsConfig(AppConfig):
    name = "evals"

    def ready(self) -> None:
        from evals.app_scores import evaluation_events_ingest, pending_evaluations_apply
        from traces.services import IngestListener, on_ingest

        # gen_ai.evaluation.result events received with spans or logs become app scores in the ingest transaction.
        on_ingest(IngestListener(spans_stored=pending_evaluations_apply, evaluations_received=evaluation_events_ingest))

        from accounts.retention import targets_register
        from evals.retention import retention_targets

        targets_register(retention_targets)  # what of this app's data expires (accounts.retention)
