"""Simulated analytics history for the demo project (called by seed_demo; idempotent)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from analytics.models import Rollup
from dashboards import demo
from flags.models import Environment

SPECS = {
    "redesigned-dashboard": demo.REDESIGNED_DASHBOARD,
    "new-pdf-engine": demo.PDF_ENGINE_REGRESSION,
}


class Command(BaseCommand):
    help = "Stores simulated exposures and metrics for the demo flags' dashboards."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", default="demo")
        parser.add_argument("--environment", default="production")
        parser.add_argument("--flag", action="append", choices=sorted(SPECS), dest="flags")

    def handle(self, *args: Any, **options: Any) -> None:
        environment = Environment.objects.filter(
            project__key=options["project"], key=options["environment"]
        ).first()
        if environment is None:
            self.stderr.write(f"No environment {options['project']}/{options['environment']}.")
            return
        for key in options["flags"] or ["redesigned-dashboard"]:
            if Rollup.objects.filter(environment=environment, flag_key=key).exists():
                self.stdout.write(f"{key}: history already there")
                continue
            stored = demo.seed_history(environment.pk, SPECS[key])
            self.stdout.write(self.style.SUCCESS(f"{key}: {stored} simulated events stored"))
