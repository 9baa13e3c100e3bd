"""Stamps each historical record with who, why and from where (admin, API, automation).

Services set ``_history_user``, ``_change_reason`` and ``_history_source`` on an instance
before saving it; simple-history reads the first two itself, this handler copies the third.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from flags.models import AuditFields

# The longest reason a person may give (API and admin). Checked where input arrives, never in
# the database: the column is text, so a reason a service extends with a note always fits.
REASON_MAX_LENGTH = 1000


def stamp(instance: Any, *, user: User | None, source: str, reason: str) -> None:
    instance._history_user = user
    instance._change_reason = reason
    instance._history_source = source


def copy_source(sender: Any, instance: Any, history_instance: Any, **kwargs: Any) -> None:
    history_instance.history_source = getattr(
        instance, "_history_source", AuditFields.Source.SYSTEM
    )


def connect() -> None:
    from simple_history.signals import pre_create_historical_record

    pre_create_historical_record.connect(copy_source, dispatch_uid="flags.history.copy_source")
