"""manage.py simulate_rollout: replay a rollout on simulated time (see rollouts.simulation)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rollouts.services import RolloutError
from rollouts.simulation import (
    SCENARIOS,
    Scenario,
    false_rollback_figure,
    run_full,
    run_light,
    scenario,
)

# Every scalar field of a Scenario is an option (--fail-share 0.03); the list-valued ones have
# options of their own (--stages) or come from --file. The annotations are strings here
# (``from __future__ import annotations`` in rollouts.simulation).
_KINDS: dict[str, type] = {"int": int, "float": float, "str": str}
OPTIONS = tuple((f.name, _KINDS[str(f.type)]) for f in fields(Scenario) if str(f.type) in _KINDS)


class Command(BaseCommand):
    help = "Replays a staged rollout on simulated time through the real plan, SDK and checks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="healthy")
        parser.add_argument("--file", type=Path, help="a JSON file of scenario fields")
        for name, kind in OPTIONS:
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind)
        parser.add_argument("--stages", help="percentages, comma-separated (5,25,50,100)")
        parser.add_argument("--json", dest="json_path", help="write the result here ('-': stdout)")
        parser.add_argument(
            "--repeat", type=int, default=0,
            help="this many runs with seeds seed..seed+N-1 on the light path: rollback rate "
            "(the false-rollback rate of a healthy scenario) with its Wilson 95%% interval",
        )  # fmt: skip
        parser.add_argument(
            "--light", action="store_true",
            help="one run on the light path (in memory, no database) instead of the full path",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        overrides: dict[str, Any] = {}
        if options["file"]:
            try:
                overrides.update(json.loads(options["file"].read_text()))
            except (OSError, ValueError) as exc:
                raise CommandError(f"--file: {exc}") from exc
        overrides.update({n: options[n] for n, _ in OPTIONS if options[n] is not None})
        if options["stages"]:
            try:
                overrides["stages"] = [float(p) for p in options["stages"].split(",")]
            except ValueError as exc:
                raise CommandError("--stages: percentages separated by commas") from exc
        if options["repeat"] < 0:
            raise CommandError("--repeat: a number of runs, 1 or more")
        try:
            sc: Scenario = scenario(options["scenario"], **overrides)
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        quiet = options["json_path"] == "-"
        if options["repeat"]:
            result = false_rollback_figure(options["repeat"], sc)
            if not quiet:
                self._figure(result)
        elif options["light"]:
            result = run_light(sc)
            if not quiet:
                self._light(result)
        else:
            try:
                result = run_full(sc, progress=(lambda _: None) if quiet else self._progress)
            except RolloutError as exc:
                # The simulated plan is a plan like any other: e.g. one that would tell nobody
                # of a rollback cannot start (set OPS_EMAILS for the installation).
                raise CommandError(f"the simulated rollout could not run: {exc}") from exc
            if not quiet:
                self._summary(result)
        if options["json_path"] == "-":
            self.stdout.write(json.dumps(result, indent=2, default=str))
        elif options["json_path"]:
            Path(options["json_path"]).write_text(json.dumps(result, indent=2, default=str))

    def _progress(self, line: str) -> None:
        self.stderr.write(line)

    def _figure(self, result: dict[str, Any]) -> None:
        low, high = result["rollback_rate_95"]
        self.stdout.write(
            f"{result['rolled_back']} of {result['runs']} rollouts rolled back: rate "
            f"{result['rollback_rate']:.3f} (95% interval {low:.3f}-{high:.3f}); configured "
            f"false-positive rate {result['configured_false_positive_rate']}; "
            f"{result['completed']} completed, {result['held']} held"
        )
        seconds = result["median_regression_to_rollback_seconds"]
        if seconds is not None:
            self.stdout.write(
                f"median regression to rollback: {seconds / 60:.0f} simulated minutes; median "
                f"accounts exposed at rollback: {result['median_accounts_exposed_at_rollback']:g}"
            )

    def _light(self, result: dict[str, Any]) -> None:
        self.stdout.write(
            f"outcome: {result['outcome']} at stage {result['stage'] + 1} "
            f"({result['percent']:g}%) after {result['hours']:.1f} simulated hours, "
            f"{result['checks']} checks; accounts ever exposed: {result['accounts_exposed']}"
        )
        for reason in result["reasons"]:
            self.stdout.write(f"  {reason}")
        seconds = result["regression_to_rollback_seconds"]
        if seconds is not None:
            self.stdout.write(f"regression to rollback: {seconds / 60:.1f} simulated minutes")

    def _summary(self, result: dict[str, Any]) -> None:
        for stage in result["stages"]:
            self.stdout.write(
                f"stage {stage['stage']} ({stage['percent']:g}%): {stage['accounts_exposed']} "
                f"accounts exposed, requests {stage['requests']}, errors {stage['errors']}, "
                f"last verdict {stage['verdict']}: {'; '.join(stage['reasons'])}"
            )
        self.stdout.write(f"outcome: {result['outcome']}")
        seconds = result["regression_to_rollback_seconds"]
        if seconds is not None:
            self.stdout.write(
                f"regression to rollback: {seconds / 60:.1f} simulated minutes "
                f"({result['wall_seconds']} s of wall time for the whole run)"
            )
        self.stdout.write(f"accounts ever exposed: {result['accounts_exposed']}")
