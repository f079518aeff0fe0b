"""Channel secrets (webhook HMAC keys, Slack webhook URLs, PagerDuty routing keys) are stored encrypted from now on:
seal the ones already stored in plain text."""

from django.db import migrations

from accounts.vault import seal, unseal

# The transports' secret fields when this migration was written (slos.transports.*.secret_fields).
SECRET_FIELDS = {"webhook": ("secret",), "slack": ("webhook_url",), "pagerduty": ("routing_key",)}
SEALED_PREFIX = "sealed:"


def _rewrite(apps, change):
    Channel = apps.get_model("slos", "Channel")
    for channel in Channel.objects.filter(kind__in=list(SECRET_FIELDS)):
        config = dict(channel.config)
        for field in SECRET_FIELDS[channel.kind]:
            value = config.get(field)
            if isinstance(value, str) and value:
                config[field] = change(value)
        if config != channel.config:
            channel.config = config
            channel.save(update_fields=["config"])


def seal_plain(apps, schema_editor):
    _rewrite(apps, lambda v: v if v.startswith(SEALED_PREFIX) else SEALED_PREFIX + seal(v))


def unseal_sealed(apps, schema_editor):
    _rewrite(apps, lambda v: unseal(v.removeprefix(SEALED_PREFIX)) if v.startswith(SEALED_PREFIX) else v)


class Migration(migrations.Migration):
    dependencies = [
        ("slos", "0004_delivery_test_messages"),
    ]

    operations = [migrations.RunPython(seal_plain, unseal_sealed)]
