"""`manage.py stale_flags [--json] [--project KEY]`: the weekly report, in the terminal."""

from __future__ import annotations

import json
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

    def handle(self, *args: Any, **options: Any) -> None:
        projects = None
        if options["project"]:
            projects = list(Project.objects.filter(key=options["project"]))
            if not projects:
                raise CommandError(f"No project with key {options['project']!r}.")
        report = build_report(timezone.now(), projects)
        if options["json"]:
            self.stdout.write(json.dumps(report.as_json(), indent=2))
            return
        context = {"report": report, "entries": report.entries, "trend": report.trend}
        self.stdout.write(render_to_string("hygiene/email/weekly.txt", context))
