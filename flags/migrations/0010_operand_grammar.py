"""Stored operands into the operand grammar (docs/ruleset.md): see flags/operand_upgrade.py."""

import logging

from django.db import migrations

log = logging.getLogger(__name__)


def upgrade(apps, schema_editor):
    from flags.operand_upgrade import unresolved, upgrade_document, upgrade_rules

    found = []
    for model, label in (("FlagState", "flag state"), ("Segment", "segment")):
        for row in apps.get_model("flags", model).objects.all().iterator():
            rules, changes = upgrade_rules(row.rules, f"{label} {row.pk}: rules")
            if changes:
                row.rules = rules
                row.save(update_fields=["rules"])
                found.extend(changes)
    # The stored documents too, so that the serving path reads the same rules before the next
    # rebuild; the meaning of each rewritten operand is unchanged, so the version stays.
    for row in apps.get_model("flags", "Ruleset").objects.all().iterator():
        document, changes = upgrade_document(row.document)
        if changes:
            row.document = document
            row.save(update_fields=["document"])
    for rewrite in unresolved(found):
        log.warning(
            "%s: %r is outside the operand grammar and has no faithful rewrite; edit the rule",
            rewrite.where,
            rewrite.old,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("flags", "0009_flag_archived_at"),
    ]

    operations = [
        migrations.RunPython(upgrade, migrations.RunPython.noop),
    ]
