"""Migration 0003 re-keys first sightings by hash without losing the users already seen."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from analytics.storage import sighting_hash
from flags.models import Environment, Project

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BEFORE = [("analytics", "0002_batch_client_dropped")]
AFTER = [("analytics", "0003_first_seen_by_hash")]


def migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor


def test_existing_sightings_get_the_hash_that_ingestion_computes() -> None:
    old_apps = migrate(BEFORE).loader.project_state(BEFORE).apps
    try:
        project = Project.objects.create(key="mig", name="Mig")
        environment = Environment.objects.create(project=project, key="prod", name="Prod")
        at = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
        sightings = [
            ("checkout", "on", "exposure", "user-1"),
            ("checkout", "off", "exposure", "user-1"),
            ("checkout", "on", "error", "user-2"),
            ("banner", "b", "conversion", "ünïcode-user"),
        ]
        old_first_seen = old_apps.get_model("analytics", "FirstSeen")
        for flag, variant, metric, context_key in sightings:
            old_first_seen.objects.create(
                environment_id=environment.pk,
                flag_key=flag,
                variant=variant,
                metric=metric,
                context_key=context_key,
                first_seen_at=at,
            )

        new_apps = migrate(AFTER).loader.project_state(AFTER).apps
        new_first_seen = new_apps.get_model("analytics", "FirstSeen")
        stored = set(new_first_seen.objects.values_list("sighting", flat=True))
        assert stored == {sighting_hash(*s) for s in sightings}
        assert len(stored) == len(sightings)
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
