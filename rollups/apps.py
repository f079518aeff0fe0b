from django.apps import AppConfig


class RollupsConfig(AppConfig):
    name = "rollups"

    def ready(self) -> None:
        from accounts.retention import targets_register
        from rollups.retention import retention_targets

        targets_register(retention_targets)  # what of this app's data expires (accounts.retention)

        from rollups.retention import retire_partition
        from sre4ai_web.lib.partitions import AGGREGATE, MONTH, PartitionedTable, on_drop, register

        # Partitioned by month on PostgreSQL (sre4ai_web.lib.partitions): kept 400 days by default, so a day each
        # would make hundreds of partitions.
        register(PartitionedTable("rollups.TrafficRollup", "rollups_trafficrollup", "bucket", MONTH, AGGREGATE))
        register(PartitionedTable("rollups.ScoreRollup", "rollups_scorerollup", "bucket", MONTH, AGGREGATE))
        on_drop(retire_partition)  # what /metrics counted of a dropped month stays counted
