"""Day rollups: a third granularity, and the day rows of the hours already counted (rollups.services writes them
from now on). A historical copy of the merge, as migrations must not depend on today's models."""

from collections import defaultdict
from datetime import UTC

from django.db import migrations, models
from django.db.models import Sum
from django.db.models.functions import TruncDay

from sre4ai_web.lib.bounds import MAX_COST, MAX_TOKENS_SUM

GROUP = ("project_id", "service", "environment", "day", "dimension", "value")
TRAFFIC_SUMS = (
    "traces", "errors", "latency_sum_ms", "input_tokens", "output_tokens", "cost", "unpriced", "safety_judged",
    "safety_flagged",
)  # fmt: skip
CAPS = {"input_tokens": MAX_TOKENS_SUM, "output_tokens": MAX_TOKENS_SUM, "cost": MAX_COST}


def add_day_rows(apps, schema_editor):
    for model_name, sums in (
        ("TrafficRollup", TRAFFIC_SUMS),
        ("ScoreRollup", ("good", "total", "value_sum", "value_count")),
    ):
        model = apps.get_model("rollups", model_name)
        group = (*GROUP, "name") if model_name == "ScoreRollup" else GROUP
        model.objects.filter(granularity="d").delete()
        hourly = model.objects.filter(granularity="h").annotate(day=TruncDay("bucket", tzinfo=UTC))
        hists: dict[tuple, dict[str, int]] = defaultdict(dict)
        if model_name == "TrafficRollup":
            for *key, hist in hourly.values_list(*group, "latency_hist").iterator(chunk_size=5000):
                merged = hists[tuple(key)]
                for bucket, count in hist.items():
                    merged[bucket] = merged.get(bucket, 0) + count
        days = hourly.values(*group).annotate(**{f"sum_{c}": Sum(c) for c in sums}).order_by()
        rows = []
        for day in days.iterator(chunk_size=5000):
            fields = {g: day[g] for g in group if g != "day"}
            totals = {c: min(day[f"sum_{c}"] or 0, CAPS.get(c, day[f"sum_{c}"] or 0)) for c in sums}
            if model_name == "TrafficRollup":
                fields["latency_hist"] = hists[tuple(day[g] for g in group)]
            rows.append(model(granularity="d", bucket=day["day"], **fields, **totals))
        model.objects.bulk_create(rows, batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [
        ("rollups", "0005_retired_totals"),
    ]

    operations = [
        migrations.AlterField(
            model_name="scorerollup",
            name="granularity",
            field=models.CharField(choices=[("m", "Minute"), ("h", "Hour"), ("d", "Day")], max_length=1),
        ),
        migrations.AlterField(
            model_name="trafficrollup",
            name="granularity",
            field=models.CharField(choices=[("m", "Minute"), ("h", "Hour"), ("d", "Day")], max_length=1),
        ),
        migrations.RunPython(add_day_rows, migrations.RunPython.noop),
    ]
