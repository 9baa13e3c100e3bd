"""FirstSeen is keyed by one 64-bit hash instead of four strings (see the model's docstring).

Existing rows get their hash computed here, with a frozen copy of the function, so the distinct
counts already in the rollups stay exact. Going back forgets the sightings (a hash cannot be
undone).
"""

from typing import Any

import mmh3
from django.db import migrations, models


def _sighting_hash(flag: str, variant: str, metric: str, context_key: str) -> int:
    # A frozen copy of analytics.storage.sighting_hash as of this migration.
    text = f"{len(flag)}:{flag}{len(variant)}:{variant}{len(metric)}:{metric}{context_key}"
    return int(mmh3.hash64(text, signed=True)[0])


def hash_existing(apps: Any, schema_editor: Any) -> None:
    FirstSeen = apps.get_model("analytics", "FirstSeen")
    batch = []
    rows = FirstSeen.objects.only("flag_key", "variant", "metric", "context_key").iterator(
        chunk_size=5000
    )
    for row in rows:
        row.sighting = _sighting_hash(row.flag_key, row.variant, row.metric, row.context_key)
        batch.append(row)
        if len(batch) == 5000:
            FirstSeen.objects.bulk_update(batch, ["sighting"])
            batch = []
    FirstSeen.objects.bulk_update(batch, ["sighting"])


def forget_sightings(apps: Any, schema_editor: Any) -> None:
    # Going back: the strings cannot be recovered from the hashes. Rollups keep their counts;
    # users seen again after the downgrade count as new.
    apps.get_model("analytics", "FirstSeen").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("analytics", "0002_batch_client_dropped")]

    operations = [
        migrations.AddField(
            model_name="firstseen", name="sighting", field=models.BigIntegerField(null=True)
        ),
        migrations.RunPython(hash_existing, migrations.RunPython.noop, elidable=False),
        migrations.RemoveConstraint(model_name="firstseen", name="first_seen_unique"),
        migrations.RunPython(migrations.RunPython.noop, forget_sightings, elidable=False),
        migrations.RemoveField(model_name="firstseen", name="flag_key"),
        migrations.RemoveField(model_name="firstseen", name="variant"),
        migrations.RemoveField(model_name="firstseen", name="metric"),
        migrations.RemoveField(model_name="firstseen", name="context_key"),
        migrations.AlterField(
            model_name="firstseen",
            name="sighting",
            field=models.BigIntegerField(
                help_text="analytics.storage.sighting_hash(flag, variant, metric, context key)"
            ),
        ),
        migrations.AddConstraint(
            model_name="firstseen",
            constraint=models.UniqueConstraint(
                fields=("environment", "sighting"), name="first_seen_unique"
            ),
        ),
    ]
