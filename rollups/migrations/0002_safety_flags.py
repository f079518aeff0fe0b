# Safety flags per trace in the traffic rollups (evals.signals.safety_flagged). Existing minutes are marked dirty so
# the rollup beat recomputes them from raw rows in the background (the new columns start at 0 until then).

from django.db import migrations, models


def mark_minutes_dirty(apps, schema_editor):
    TrafficRollup = apps.get_model("rollups", "TrafficRollup")
    DirtyBucket = apps.get_model("rollups", "DirtyBucket")
    minutes = TrafficRollup.objects.filter(granularity="m", dimension="").values_list("project_id", "bucket").distinct()
    batch = []
    for project_id, minute in minutes.iterator(chunk_size=5000):
        batch.append(DirtyBucket(project_id=project_id, minute=minute))
        if len(batch) >= 5000:
            DirtyBucket.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    DirtyBucket.objects.bulk_create(batch, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [
        ("rollups", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="trafficrollup",
            name="safety_flagged",
            field=models.IntegerField(default=0),
        ),
        migrations.AddField(
            model_name="trafficrollup",
            name="safety_judged",
            field=models.IntegerField(default=0),
        ),
        migrations.RunPython(mark_minutes_dirty, migrations.RunPython.noop),
    ]
