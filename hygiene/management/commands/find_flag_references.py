"""`manage.py find_flag_references PATH...`: where flag keys are used, as a CI lint step.

Exit status: 0 when every key found exists and is live, 1 when a key is unknown or archived
(so the build fails), 2 on bad usage or when the upload fails.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
from django.core.management.base import BaseCommand, CommandError, CommandParser

from flags.models import Flag, Project
from hygiene.scanner import Reference, scan_paths


class Command(BaseCommand):
    help = "Find flag keys in source files; fail on unknown or archived keys."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--project", help="Project key (default: the only project).")
        parser.add_argument("--json", action="store_true", help="Print the references as JSON.")
        parser.add_argument(
            "--upload", action="store_true", help="Send the references to a Flagsite server."
        )
        parser.add_argument(
            "--server",
            default=os.environ.get("FLAGSITE_URL", ""),
            help="Server URL for --upload (or FLAGSITE_URL).",
        )
        parser.add_argument(
            "--api-key",
            default=os.environ.get("FLAGSITE_API_KEY", ""),
            help="Management API key for --upload (or FLAGSITE_API_KEY).",
        )
        parser.add_argument("--repository", help="Repository name (default: the folder name).")
        parser.add_argument("--commit", help="Commit (default: git rev-parse HEAD).")

    def handle(self, *args: Any, **options: Any) -> None:
        paths: list[Path] = options["paths"]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise CommandError(f"No such path: {', '.join(missing)}", returncode=2)
        try:
            refs = scan_paths(paths)
        except ValueError as exc:  # a bad alias config
            raise CommandError(str(exc), returncode=2) from exc
        if options["upload"]:
            unknown, archived, removed = self._upload(refs, paths[0], options)
        else:
            unknown, archived = self._check_locally(refs, options["project"])
            removed = []
        self._print(refs, unknown, archived, removed, options["json"])
        if unknown or archived:
            raise CommandError(
                f"{len(unknown)} unknown and {len(archived)} archived flag key(s) in code.",
                returncode=1,
            )

    def _project(self, key: str | None) -> Project:
        if key:
            project = Project.objects.filter(key=key).first()
            if project is None:
                raise CommandError(f"No project with key {key!r}.", returncode=2)
            return project
        projects = list(Project.objects.all()[:2])
        if len(projects) != 1:
            raise CommandError("Give --project: there is not exactly one project.", returncode=2)
        return projects[0]

    def _check_locally(self, refs: list[Reference], key: str | None) -> tuple[list[str], ...]:
        project = self._project(key)
        keys = {r.flag_key for r in refs}
        known = dict(
            Flag.objects.filter(project=project, key__in=keys).values_list("key", "archived")
        )
        return sorted(keys - set(known)), sorted(k for k, a in known.items() if a)

    def _upload(
        self, refs: list[Reference], first: Path, options: dict[str, Any]
    ) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        server, api_key, project = options["server"], options["api_key"], options["project"]
        if not server or not api_key or not project:
            raise CommandError("--upload needs --server, --api-key and --project.", returncode=2)
        folder = first.resolve() if first.is_dir() else first.resolve().parent
        repository = options["repository"] or folder.name
        commit = options["commit"] or _git_head(folder)
        body = {
            "repository": repository,
            "commit": commit,
            "references": [
                {
                    "flagKey": r.flag_key,
                    "path": r.path,
                    "line": r.line,
                    "context": r.context,
                    "via": r.via,
                }
                for r in refs
            ],
        }
        url = f"{server.rstrip('/')}/api/v1/projects/{project}/code-references"
        try:
            answer = httpx.post(
                url, json=body, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
            )
        except httpx.HTTPError as exc:
            raise CommandError(f"Upload to {url} failed: {exc}", returncode=2) from exc
        if answer.status_code != 201:
            raise CommandError(
                f"Upload refused ({answer.status_code}): {answer.text[:500]}", returncode=2
            )
        data = answer.json()
        return data["unknown"], data["archived"], data["removed"]

    def _print(
        self,
        refs: list[Reference],
        unknown: list[str],
        archived: list[str],
        removed: list[dict[str, Any]],
        as_json: bool,
    ) -> None:
        if as_json:
            out = {
                "references": [r.__dict__ for r in refs],
                "unknown": unknown,
                "archived": archived,
                "removed": removed,
            }
            self.stdout.write(json.dumps(out, indent=2))
            return
        for r in refs:
            mark = " (unknown)" if r.flag_key in unknown else ""
            mark = " (archived)" if r.flag_key in archived else mark
            self.stdout.write(f"{r.path}:{r.line}: {r.flag_key}{mark} [{r.via}]  {r.context}")
        for gone in removed:
            self.stdout.write(f"removed since last upload: {gone['flagKey']} {gone['path']}")
        self.stdout.write(f"{len(refs)} reference(s) to {len({r.flag_key for r in refs})} flag(s)")


def _git_head(folder: Path) -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise CommandError("Give --commit: this is not a git checkout.", returncode=2) from exc
    return done.stdout.strip()
