from django.apps import AppConfig


class SlosConfig(AppConfig):
    name = "slos"
    verbose_name = "SLOs"

    def ready(self) -> None:
        from rollups.services import on_minutes_recomputed
        from slos.services import sli_minutes_recompute

        # SLI minutes are counted from the same traces and verdicts as the rollups of those minutes.
        on_minutes_recomputed(sli_minutes_recompute)
