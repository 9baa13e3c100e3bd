"""`manage.py stale_flags [--json] [--project KEY]`: the weekly report, in the terminal."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.template.loader import render_to_string
from django.utils import timezone

from flags.models import Project
from hygiene.report import build_report


class Command(BaseCommand):
    help = "Print the stale-flag report (the weekly email's content)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print JSON instead of text.")
        parser.add_argument("--project", help="Only this project (its key).")
        parser.add_argument(
            "--at", type=datetime.fromisoformat, help="Report as of this ISO time (default: now)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        projects = None
        if options["project"]:
            projects = list(Project.objects.filter(key=options["project"]))
            if not projects:
                raise CommandError(f"No project with key {options['project']!r}.")
        at = options["at"] or timezone.now()
        if timezone.is_naive(at):
            raise CommandError("--at needs a time zone, e.g. 2026-06-01T12:00:00+00:00.")
        report = build_report(at, projects)
        if options["json"]:
            self.stdout.write(json.dumps(report.as_json(), indent=2))
            return
        context = {"report": report, "entries": report.entries, "trend": report.trend}
        self.stdout.write(render_to_string("hygiene/email/weekly.txt", context))
