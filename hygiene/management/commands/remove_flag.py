"""`manage.py remove_flag KEY --serve VARIANT PATH... [--apply]`: rewrites the code that checks
a flag as if it always served VARIANT (hygiene.remover), printing a unified diff or, with
--apply, writing the files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from flags.models import Flag
from hygiene.remover import Served, rewrite_python
from hygiene.scanner import PYTHON, SCRIPT, Aliases, find_root_config, iter_files

BOOLEAN_NAMES = {"on": True, "true": True, "off": False, "false": False}


class Command(BaseCommand):
    help = "Rewrite the checks of a flag into the value it serves, removing dead code."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key")
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--serve", required=True, help="The variant the code keeps.")
        parser.add_argument("--project", help="Project key, to read the variant's value.")
        parser.add_argument("--apply", action="store_true", help="Write the files.")

    def handle(self, *args: Any, **options: Any) -> None:
        key: str = options["key"]
        served = self._served(key, options["serve"], options["project"])
        paths: list[Path] = options["paths"]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise CommandError(f"No such path: {', '.join(missing)}", returncode=2)
        first = paths[0].resolve()
        root = find_root_config(first if first.is_dir() else first.parent)
        aliases = Aliases.load(root)
        files = [f for p in paths for f in iter_files(p.resolve())]
        for f in files:
            aliases.learn(f.read_text(encoding="utf-8", errors="replace"))
        names = frozenset(a for a, k in aliases.constants.items() if k == key)
        changed = 0
        skipped_scripts = []
        for f in files:
            if f.suffix in SCRIPT:
                skipped_scripts.append(f)
                continue
            if f.suffix not in PYTHON:
                continue
            rel = f.relative_to(root).as_posix() if root in f.parents else f.as_posix()
            rewrite = rewrite_python(f.read_text(encoding="utf-8"), key, served, names, rel)
            if not rewrite.checks:
                continue
            changed += 1
            if options["apply"]:
                f.write_text(rewrite.after, encoding="utf-8")
                self.stdout.write(f"rewrote {rel} ({rewrite.checks} check(s))")
            else:
                self.stdout.write(rewrite.diff)
        changed += self._scripts(skipped_scripts, key, served, options["apply"], root)
        self.stderr.write(f"{changed} file(s) {'changed' if options['apply'] else 'to change'}")

    def _scripts(self, files: list[Path], key: str, served: Served, apply: bool, root: Path) -> int:
        from hygiene.remover_ts import rewrite_script

        count = 0
        for f in files:
            rel = f.relative_to(root).as_posix() if root in f.parents else f.as_posix()
            rewrite = rewrite_script(f.read_text(encoding="utf-8"), key, served, rel, f.suffix)
            if not rewrite.checks:
                continue
            count += 1
            if apply:
                f.write_text(rewrite.after, encoding="utf-8")
                self.stdout.write(f"rewrote {rel} ({rewrite.checks} check(s))")
            else:
                self.stdout.write(rewrite.diff)
        return count

    def _served(self, key: str, variant: str, project: str | None) -> Served:
        flags = Flag.objects.filter(key=key)
        if project:
            flags = flags.filter(project__key=project)
        try:
            found = list(flags[:2])
        except DatabaseError:  # no database here (a developer's checkout, CI): infer below
            found = []
        if len(found) == 1:
            variants = found[0].variants or {}
            if variant not in variants:
                raise CommandError(
                    f"{key} has no variant {variant!r} (it has {', '.join(sorted(variants))}).",
                    returncode=2,
                )
            return Served(variant, variants[variant])
        # Not in this database (or ambiguous): boolean names serve booleans, others themselves.
        return Served(variant, BOOLEAN_NAMES.get(variant.lower(), variant))
