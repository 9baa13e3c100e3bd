"""RolloutPlan.approved_definition: what a plan's approval covers (rollouts.definition).
Plans approved before keep their approval for the definition they have now."""

from typing import Any

from django.db import migrations, models


def cover_approved_plans(apps: Any, schema_editor: Any) -> None:
    from rollouts.definition import fingerprint  # reads only fields and related rows

    plan_model = apps.get_model("rollouts", "RolloutPlan")
    for plan in plan_model.objects.filter(approved_by__isnull=False):
        plan.approved_definition = fingerprint(plan)
        plan.save(update_fields=["approved_definition"])


class Migration(migrations.Migration):

    dependencies = [("rollouts", "0002_plan_last_sequence")]

    operations = [
        migrations.AddField(
            model_name="rolloutplan",
            name="approved_definition",
            field=models.CharField(blank=True, editable=False, max_length=64),
        ),
        migrations.AlterField(
            model_name="rolloutcheck",
            name="verdict",
            field=models.CharField(
                choices=[
                    ("progress", "Progress"), ("hold", "Hold"), ("rollback", "Roll back"),
                    ("pause", "Pause"), ("resume", "Resume"), ("start", "Start"),
                    ("abort", "Abort"), ("complete", "Complete"), ("approve", "Plan approved"),
                    ("approval_requested", "Approval requested"), ("edit", "Plan edited"),
                ],
                max_length=24,
            ),
        ),
        migrations.RunPython(cover_approved_plans, migrations.RunPython.noop),
    ]
