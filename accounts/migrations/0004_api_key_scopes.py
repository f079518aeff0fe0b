"""API key scopes replace can_manage. Keys that exist keep doing what they did: ingest and read, plus manage
where they could change SLOs."""

from django.db import migrations, models

import accounts.models


def scopes_from_can_manage(apps, schema_editor):
    ApiKey = apps.get_model("accounts", "ApiKey")
    ApiKey.objects.filter(can_manage=False).update(scopes=["ingest", "read"])
    ApiKey.objects.filter(can_manage=True).update(scopes=["ingest", "read", "manage"])


def can_manage_from_scopes(apps, schema_editor):
    ApiKey = apps.get_model("accounts", "ApiKey")
    for key in ApiKey.objects.all():
        key.can_manage = "manage" in key.scopes
        key.save(update_fields=["can_manage"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_project_secret"),
    ]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="scopes",
            field=models.JSONField(default=accounts.models.default_scopes),
        ),
        migrations.RunPython(scopes_from_can_manage, can_manage_from_scopes),
        migrations.RemoveField(model_name="apikey", name="can_manage"),
    ]
