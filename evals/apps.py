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

        from evals.retention import probe_results_unlink
        from sre4ai_web.lib.partitions import DAY, RAW, PartitionedTable, on_drop, register

        # Scores are partitioned by their trace's start, by day like traces (sre4ai_web.lib.partitions). A score
        # written before trace_start was always set gets it from its trace before the table is converted.
        register(
            PartitionedTable(
                "evals.Score",
                "evals_score",
                "trace_start",
                DAY,
                RAW,
                backfill="UPDATE evals_score s SET trace_start = t.start_time FROM traces_trace t "
                "WHERE t.id = s.trace_id AND s.trace_start IS NULL",
            )
        )
        on_drop(probe_results_unlink)
