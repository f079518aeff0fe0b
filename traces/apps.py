from django.apps import AppConfig


class TracesConfig(AppConfig):
    name = "traces"

    def ready(self) -> None:
        from accounts.retention import targets_register
        from traces.retention import retention_targets

        targets_register(retention_targets)  # what of this app's data expires (accounts.retention)
