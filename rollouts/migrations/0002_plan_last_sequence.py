"""RolloutPlan.last_sequence: the number of the plan's last timeline record, kept on the plan so
a check need not look it up; existing plans take it from their records."""

from typing import Any

from django.db import migrations, models
from django.db.models import Max, OuterRef, Subquery


def number_existing_plans(apps: Any, schema_editor: Any) -> None:
    plan_model = apps.get_model("rollouts", "RolloutPlan")
    check_model = apps.get_model("rollouts", "RolloutCheck")
    last = (
        check_model.objects.filter(plan=OuterRef("pk"))
        .values("plan")
        .annotate(last=Max("sequence"))
        .values("last")
    )
    plan_model.objects.filter(checks__isnull=False).distinct().update(last_sequence=Subquery(last))


class Migration(migrations.Migration):
    dependencies = [("rollouts", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="rolloutplan",
            name="last_sequence",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.RunPython(number_existing_plans, migrations.RunPython.noop),
    ]
