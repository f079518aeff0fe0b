from django.apps import AppConfig


class EvalsConfig(AppConfig):
    name = "evals"

    def ready(self) -> None:
        from accounts.retention import targets_register
        from evals.retention import retention_targets

        targets_register(retention_targets)  # what of this app's data expires (accounts.retention)
