"""Creates the demo project: the five seed flags, two segments and one user per role.

Idempotent: what exists is left as it is, so running it twice changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from flags import roles, services
from flags.models import Flag, Project, SavedContext, Segment

DEMO_PASSWORD = "flagsite-demo"
ACTOR = services.Actor.automation("seed_demo")
SOURCE = services.Source.SYSTEM
REASON = "demo data"
USERS = {
    "owner": roles.Role.OWNER,
    "release-manager": roles.Role.RELEASE_MANAGER,
    "editor": roles.Role.EDITOR,
    "viewer": roles.Role.VIEWER,
}
ENTERPRISE_ACCOUNTS = ["acct-1001", "acct-1002", "acct-1003"]


def _split(on: int, bucket_by: str = "accountId") -> dict[str, Any]:
    """``on`` percent get "on", the rest "off" (weights are out of 100,000); a context
    without the bucketing attribute gets "off" (the fallback), never a random answer."""
    return {
        "rollout": {
            "bucketBy": bucket_by,
            "fallbackVariant": "off",
            "variants": [
                {"variant": "on", "weight": on * 1000},
                {"variant": "off", "weight": 100_000 - on * 1000},
            ],
        }
    }


SEGMENTS: list[dict[str, Any]] = [
    {
        "key": "enterprise-accounts",
        "name": "Enterprise accounts",
        "description": "The accounts of the bulk-invoice API pilot.",
        "key_attribute": "accountId",
        "included": ENTERPRISE_ACCOUNTS,
    },
    {
        "key": "free-us-uk",
        "name": "Free tier in the US and UK",
        # Countries are ISO 3166-1 alpha-2 codes: the UK is "GB". "UK" is not accepted as an
        # alias (docs/admin.md): apps send ISO codes, as browsers and geo-IP services do.
        "description": "Free-plan accounts whose country is US or GB (ISO codes).",
        "key_attribute": "accountId",
        "rules": [
            {
                "id": "free-us-gb",
                "conditions": [
                    {"attribute": "plan", "operator": "equals", "values": ["free"]},
                    {"attribute": "country", "operator": "in", "values": ["US", "GB"]},
                ],
            }
        ],
    },
]

# key -> (definition, targeting used in every environment)
FLAGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "new-pdf-engine": (
        {"name": "New PDF engine", "kind": "release", "tags": ["invoices", "pdf"],
         "description": "The new PDF export engine, rolled out gradually."},
        {"enabled": True, "default_serve": _split(5)},
    ),
    "redesigned-dashboard": (
        {"name": "Redesigned dashboard", "kind": "experiment", "value_type": "string",
         "variants": {"control": "old", "treatment": "new"}, "tags": ["dashboard"],
         "client_visible": True,
         "description": "A/B test: 50% see the old dashboard, 50% the new one."},
        # By user: targetingKey, which OpenFeature apps always send (userId is read when it
        # is absent). A context with neither sees the old dashboard (the fallback).
        {"enabled": True, "off_variant": "control", "default_serve": {"rollout": {
            "bucketBy": "targetingKey", "fallbackVariant": "control",
            "variants": [{"variant": "control", "weight": 50_000},
                         {"variant": "treatment", "weight": 50_000}]}}},
    ),
    "ai-chatbot": (
        {"name": "AI chatbot", "kind": "release", "tags": ["support"], "client_visible": True,
         "description": "Only free-tier accounts in the US and the UK (country GB)."},
        {"enabled": True, "default_serve": {"variant": "off"}, "rules": [
            {"id": "free-us-uk", "conditions": [
                {"operator": "in_segment", "values": ["free-us-uk"]}], "serve": {"variant": "on"}}
        ]},
    ),
    "bulk-invoice-api": (
        {"name": "Bulk invoice API", "kind": "permission", "tags": ["api", "enterprise"],
         "description": "The three enterprise accounts of the enterprise-accounts segment."},
        {"enabled": True, "default_serve": {"variant": "off"}, "rules": [
            {"id": "enterprise", "conditions": [
                {"operator": "in_segment", "values": ["enterprise-accounts"]}],
             "serve": {"variant": "on"}}
        ]},
    ),
    "maintenance-mode": (
        {"name": "Maintenance mode", "kind": "ops", "tags": ["ops", "kill-switch"],
         "description": "Global kill switch: off unless we are down for maintenance."},
        {"enabled": False},
    ),
}  # fmt: skip


SAVED_CONTEXTS = [
    (
        "Enterprise account",
        {"targetingKey": "user-1", "accountId": "acct-1001", "plan": "enterprise", "country": "GB"},
    ),
    (
        "Free account in the UK",
        {"targetingKey": "user-2", "accountId": "acct-2001", "plan": "free", "country": "GB"},
    ),
    (
        "Pro account in France",
        {"targetingKey": "user-3", "accountId": "acct-3001", "plan": "pro", "country": "FR"},
    ),
    ("OpenFeature app (targetingKey only)", {"targetingKey": "user-4"}),
]

# Who answers for each flag: product managers own releases and experiments, ops its switch.
FLAG_OWNERS = {
    "new-pdf-engine": "editor",
    "redesigned-dashboard": "editor",
    "ai-chatbot": "editor",
    "bulk-invoice-api": "owner",
    "maintenance-mode": "release-manager",
}


class Command(BaseCommand):
    help = "Creates the demo project, its five flags, two segments and one user per role."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            created = not Project.objects.filter(key="demo").exists()
            project = self._project()
            self._users(project)
            for spec in SEGMENTS:
                if not Segment.objects.filter(project=project, key=spec["key"]).exists():
                    data = {k: v for k, v in spec.items()}
                    services.create_segment(
                        project, data=data, actor=ACTOR, source=SOURCE, reason=REASON
                    )
            for key, (definition, targeting) in FLAGS.items():
                if Flag.objects.filter(project=project, key=key).exists():
                    continue
                owner = User.objects.get(username=FLAG_OWNERS[key])
                # client-visible: the /demo/ page reads them with a client key
                data = {"key": key, "owner": owner, "client_visible": True, **definition}
                flag = services.create_flag(
                    project, data=data, actor=ACTOR,
                    source=SOURCE,
                    reason=REASON,
                )  # fmt: skip
                for env in project.environments.all():
                    state = services.get_state(flag, env)
                    services.update_flag_state(
                        state, changes=targeting, expected_version=state.version, actor=ACTOR,
                        source=SOURCE, reason=REASON,
                    )  # fmt: skip
            if created:
                # Show the approval flow: production changes need a second person.
                production = project.environments.get(key="production")
                services.update_environment(
                    production, changes={"requires_approval": True},
                    expected_version=production.version, actor=ACTOR, source=SOURCE, reason=REASON,
                )  # fmt: skip
            self._contexts(project)
        call_command("seed_demo_history", stdout=self.stdout)  # dashboards' simulated history
        self.stdout.write(f"Log in at /admin/ with password {DEMO_PASSWORD!r} as:")
        for name in ("admin", *USERS):
            role = "superuser" if name == "admin" else USERS[name].label
            self.stdout.write(f"  {name:<16} {role}")
        call_command("seed_demo_keys", stdout=self.stdout)  # apikeys' own command

    def _contexts(self, project: Project) -> None:
        for name, context in SAVED_CONTEXTS:
            SavedContext.objects.get_or_create(
                project=project, name=name, defaults={"context": context}
            )

    def _project(self) -> Project:
        project = Project.objects.filter(key="demo").first()
        if project is None:
            project = services.create_project(
                key="demo", name="Demo invoicing app", actor=ACTOR, source=SOURCE, reason=REASON
            )
        return project

    def _users(self, project: Project) -> None:
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.test", DEMO_PASSWORD)
        for name, role in USERS.items():
            user, created = User.objects.get_or_create(
                username=name, defaults={"is_staff": True, "email": f"{name}@example.test"}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
                roles.grant_role(user, project, role)
