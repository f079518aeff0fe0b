from django.apps import AppConfig


class RollupsConfig(AppConfig):
    name = "rollups"

    def ready(self) -> None:
        from accounts.retention import targets_register
        from rollups.retention import retention_targets

        targets_register(retention_targets)  # what of this app's data expires (accounts.retention)
