from typing import Any

from django.apps import AppConfig


class GuardConfig(AppConfig):
    name = "guard"
    verbose_name = "Guard"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from accounts.models import Project
        from guard.models import GuardPolicy
        from slos.models import Budget

        for signal in (post_save, post_delete):
            for sender in (GuardPolicy, Budget, Project):
                signal.connect(
                    _forget_policies,
                    sender=sender,
                    dispatch_uid=f"sre4ai_forget_policies_{sender.__name__}_{signal is post_save}",
                )


def _forget_policies(sender: object, instance: Any, **kwargs: object) -> None:
    """A policy or budget saved or deleted in this process applies to the next call: the project's cached policies
    (a service without its own policy uses the project's default) and budgets go. So do they when the project is
    saved or deleted."""
    from accounts.models import Project
    from guard.selectors import BUDGET_CACHE, POLICY_CACHE

    project_id = instance.pk if isinstance(instance, Project) else instance.project_id
    POLICY_CACHE.discard_where(lambda key, _: key[0] == project_id)
    BUDGET_CACHE.discard(project_id)
