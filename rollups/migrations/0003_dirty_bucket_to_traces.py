# The dirty-minute log now belongs to traces (traces 0010 took over its table, rollups_dirtybucket): remove it from
# the rollups state without touching the table, and move its content type so its permissions follow it.

from django.db import migrations


def move_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="traces", model="dirtybucket").exists():
        ContentType.objects.filter(app_label="rollups", model="dirtybucket").update(app_label="traces")


def move_content_type_back(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="rollups", model="dirtybucket").exists():
        ContentType.objects.filter(app_label="traces", model="dirtybucket").update(app_label="rollups")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("rollups", "0002_safety_flags"),
        ("traces", "0010_dirty_bucket"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="DirtyBucket")],
            database_operations=[],
        ),
        migrations.RunPython(move_content_type, move_content_type_back),
    ]
