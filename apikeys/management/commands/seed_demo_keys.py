"""Issues the demo project's API keys once (development), so that the API docs' "Try it out"
and the demo page work at once. Raw keys are never stored: they are printed when issued, and
only then. Called by flags' seed_demo (flags does not import this app)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apikeys import services
from apikeys.models import ApiKey
from flags.models import AuditFields, Environment

DEMO_KEYS = {"server": "demo server key", "client": "demo client key"}


class Command(BaseCommand):
    help = "Issues and prints the demo project's development API keys (once)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--project", default="demo")

    def handle(self, *args: Any, **options: Any) -> None:
        environment = Environment.objects.get(project__key=options["project"], key="development")
        issued = {}
        for kind, name in DEMO_KEYS.items():
            if not ApiKey.objects.filter(environment=environment, name=name).exists():
                _, raw = services.provision(
                    environment, kind=kind, name=name, source=AuditFields.Source.SYSTEM,
                    reason="demo data",
                )  # fmt: skip
                issued[kind] = raw
        if issued:
            self.stdout.write("Demo API keys (development; shown this once, keep them):")
            for kind, raw in issued.items():
                self.stdout.write(f"  {kind:<16} {raw}")
        else:
            self.stdout.write(
                "Demo API keys were shown at the first start; issue more under API keys."
            )
