"""The guard policy of a project (service "") or of one service: which checks run in the request path, with
which thresholds and actions. The policy itself is a validated JSON document (guard.policy.PolicySpec). And the
outbox of decisions still to be recorded in their traces."""

from django.db import models

from accounts.models import Project


class GuardPolicy(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="guard_policies")
    # "" = the project's default, used for every service without a policy of its own.
    service = models.CharField(max_length=200, blank=True)
    spec = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["service"]
        constraints = [
            # One policy per service (the guard call looks it up by project and service).
            models.UniqueConstraint(fields=["project", "service"], name="guard_policy_unique_service"),
        ]


class GuardRecord(models.Model):
    """A decision answered but not yet recorded as its apply_guardrail span and guardrail score (guard.services):
    written by the guard call, recorded and deleted in one transaction by guard.tasks.record_decisions."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    payload = models.JSONField()  # the span's ids, service, user, stage, decision, verdicts, start and duration
    created_at = models.DateTimeField(auto_now_add=True)
