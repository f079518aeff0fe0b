from django.apps import AppConfig


class TracesConfig(AppConfig):
    name = "traces"

    def ready(self) -> None:
        from accounts.retention import targets_register
        from traces.retention import retention_targets

        targets_register(retention_targets)  # what of this app's data expires (accounts.retention)

        from sre4ai_web.lib.partitions import DAY, RAW, PartitionedTable, register

        # Time-partitioned on PostgreSQL (sre4ai_web.lib.partitions): parents before children.
        register(PartitionedTable("traces.Trace", "traces_trace", "start_time", DAY, RAW))
        register(PartitionedTable("traces.Span", "traces_span", "start_time", DAY, RAW))
        register(
            PartitionedTable(
                "traces.RetrievedDocument",
                "traces_retrieveddocument",
                "start_time",
                DAY,
                RAW,
                via=("traces_span", "span_id"),
            )
        )
