"""An archived flag is served off during the grace period, then leaves SDK rulesets through
the normal rebuild (hygiene.services.rebuild_after_archive_grace); a live flag's
prerequisite stays, served off, so the ruleset stays valid."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from flagsite_sdk.engine import compile_ruleset

from flags import services
from flags.models import Environment, Flag, FlagState, Ruleset
from hygiene.services import rebuild_after_archive_grace

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
ACTOR = services.Actor.automation("test")
SYSTEM = services.Source.SYSTEM


def turn_on(flag: Flag, env: Environment, **changes: object) -> None:
    state = FlagState.objects.get(flag=flag, environment=env)
    services.update_flag_state(
        state, changes={"enabled": True, "default_serve": {"variant": "on"}, **changes},
        expected_version=state.version, actor=ACTOR, source=SYSTEM, reason="test",
    )  # fmt: skip


def document(env: Environment) -> dict[str, object]:
    doc: dict[str, object] = Ruleset.objects.get(environment=env).document
    return doc


def test_archived_flag_is_served_off_then_leaves_after_the_grace(settings) -> None:
    settings.FLAGSITE_ARCHIVE_GRACE_DAYS = 7
    project = services.create_project(key="shop", name="Shop", actor=ACTOR, source=SYSTEM)
    dev = Environment.objects.get(project=project, key="development")
    flag = services.create_flag(
        project, data={"key": "old", "name": "Old"}, actor=ACTOR, source=SYSTEM
    )
    turn_on(flag, dev)
    assert compile_ruleset(document(dev)).is_enabled("old", {"targetingKey": "u1"}) is True

    flag = services.archive_flag(flag, actor=ACTOR, source=SYSTEM, reason="launched")
    assert flag.archived_at is not None
    served = compile_ruleset(document(dev)).evaluate("old", {"targetingKey": "u1"}, None)
    assert served.variant == "off"
    assert served.value is False

    # Within the grace period nothing is rebuilt.
    version = Ruleset.objects.get(environment=dev).version
    assert rebuild_after_archive_grace(timezone.now()) == []
    Flag.objects.filter(pk=flag.pk).update(archived_at=timezone.now() - timedelta(days=6.9))
    assert rebuild_after_archive_grace() == []
    assert "old" in document(dev)["flags"]  # type: ignore[operator]

    # Past it, every environment's ruleset drops the flag, with a new version.
    Flag.objects.filter(pk=flag.pk).update(archived_at=timezone.now() - timedelta(days=7.1))
    rebuilt = rebuild_after_archive_grace()
    assert dev.pk in rebuilt
    assert len(rebuilt) == 3
    assert "old" not in document(dev)["flags"]  # type: ignore[operator]
    assert Ruleset.objects.get(environment=dev).version == version + 1
    assert rebuild_after_archive_grace() == []  # nothing left to do

    # Restoring it brings it back as it was.
    services.archive_flag(flag, actor=ACTOR, source=SYSTEM, reason="oops", archived=False)
    assert compile_ruleset(document(dev)).is_enabled("old", {"targetingKey": "u1"}) is True


def test_a_live_flags_prerequisite_stays_served_off(settings) -> None:
    settings.FLAGSITE_ARCHIVE_GRACE_DAYS = 0
    project = services.create_project(key="shop", name="Shop", actor=ACTOR, source=SYSTEM)
    dev = Environment.objects.get(project=project, key="development")
    base = services.create_flag(
        project, data={"key": "base", "name": "Base"}, actor=ACTOR, source=SYSTEM
    )
    child = services.create_flag(
        project, data={"key": "child", "name": "Child"}, actor=ACTOR, source=SYSTEM
    )
    turn_on(base, dev)
    turn_on(child, dev, prerequisites=[{"flag": "base", "variants": ["on"]}])
    services.archive_flag(base, actor=ACTOR, source=SYSTEM, reason="x")
    rebuild_after_archive_grace()
    flags = document(dev)["flags"]
    assert flags["base"]["enabled"] is False  # type: ignore[index]
    ruleset = compile_ruleset(document(dev))
    assert ruleset.is_enabled("child", {"targetingKey": "u1"}) is False
