"""The periodic check itself, in this process: one query for every environment served, a
reload only of what moved, revoked keys forgotten, and nothing when nothing is served."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apikeys import authentication
from apikeys import invalidation as key_invalidation
from apikeys.models import ApiKey
from flags import evaluation
from flags.models import Ruleset
from tests.integration.api.conftest import World

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def serve_every_environment(world: World) -> dict[int, int]:
    versions = {}
    for env in world.project.environments.all():
        versions[env.pk] = evaluation.get_snapshot(env.pk).version
    return versions


def test_nothing_served_means_no_query() -> None:
    evaluation.clear()
    with CaptureQueriesContext(connection) as queries:
        assert evaluation.heal() == 0
    assert len(queries) == 0


def test_one_query_checks_every_environment_and_nothing_reloads_when_nothing_moved(
    world: World,
) -> None:
    versions = serve_every_environment(world)
    assert len(versions) == 3

    with CaptureQueriesContext(connection) as queries:
        assert evaluation.heal() == 0

    assert len(queries) == 1
    assert "flags_ruleset" in queries[0]["sql"]


def test_a_version_written_behind_the_cache_is_reloaded_and_only_that_one(world: World) -> None:
    versions = serve_every_environment(world)
    # A write this process never heard of (no publish): bump the stored row directly.
    row = Ruleset.objects.get(environment=world.dev)
    document = dict(row.document)
    document["version"] = row.version + 1
    Ruleset.objects.filter(pk=row.pk).update(version=row.version + 1, document=document)

    with CaptureQueriesContext(connection) as queries:
        assert evaluation.heal() == 1

    assert len(queries) == 2  # the check, then the one reload
    assert evaluation.get_snapshot(world.dev.pk).version == versions[world.dev.pk] + 1
    assert evaluation.get_snapshot(world.prod.pk).version == versions[world.prod.pk]


def test_a_key_revoked_behind_the_cache_is_forgotten_in_one_query(world: World) -> None:
    raw = world.keys["server"]
    assert authentication.resolve_key(raw) is not None  # cached now
    ApiKey.objects.filter(name="server").update(revoked_at="2026-01-01T00:00:00Z")
    assert authentication.peek_key(raw) is not None  # still cached: nobody was told

    with CaptureQueriesContext(connection) as queries:
        assert key_invalidation.revalidate_cached_keys() == 1

    assert len(queries) == 1
    assert authentication.peek_key(raw) is None
    assert authentication.resolve_key(raw) is None
