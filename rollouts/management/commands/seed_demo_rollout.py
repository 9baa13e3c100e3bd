"""manage.py seed_demo_rollout: starts the demo rollout (after seed_demo; idempotent)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from rollouts.demo import ensure_demo_rollout


class Command(BaseCommand):
    help = "Creates and starts the demo rollout on the demo project's new-pdf-engine flag."

    def handle(self, *args: Any, **options: Any) -> None:
        plan = ensure_demo_rollout()
        if plan is None:
            self.stdout.write("no demo rollout: run seed_demo first")
            return
        self.stdout.write(
            f"demo rollout #{plan.pk} ({plan.get_status_display()}): watch it advance at "
            f"/admin/rollouts/rolloutplan/{plan.pk}/change/"
        )
