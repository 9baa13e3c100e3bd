"""What every write shares: who acts, from where, and the checks on the input."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models

from flags import roles
from flags.errors import ChangeRejected, FieldError, VersionConflict
from flags.history import REASON_MAX_LENGTH
from flags.models import AuditFields

Source = AuditFields.Source
MAX_REASON_LENGTH = REASON_MAX_LENGTH


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: a user, or automation (no user, e.g. the rollout engine).

    ``environments`` narrows what the actor may alter: a management key scoped to one
    environment acts as its creator, but only for changes whose effect stays in that
    environment. None means no narrowing beyond the user's roles.
    """

    user: User | None = None
    name: str = ""
    environments: frozenset[int] | None = None

    @classmethod
    def automation(cls, name: str) -> Actor:
        return cls(user=None, name=name)

    @property
    def is_automation(self) -> bool:
        return self.user is None

    def __str__(self) -> str:
        return str(self.user) if self.user is not None else f"automation:{self.name}"


ActorLike = Actor | User | AnonymousUser


def as_actor(actor: ActorLike) -> Actor:
    if isinstance(actor, Actor):
        if actor.user is not None and not actor.user.is_authenticated:
            raise PermissionDenied("Sign in to make changes.")
        return actor
    if isinstance(actor, AnonymousUser) or not actor.is_authenticated:
        raise PermissionDenied("Sign in to make changes.")
    return Actor(user=actor)


def check_source(actor: Actor, source: str) -> None:
    if source not in Source.values:
        raise ValueError(f"unknown source {source!r}")
    if actor.is_automation and source not in (Source.AUTOMATION, Source.SYSTEM):
        raise PermissionDenied("Only automation may act without a user.")


def check_reason(reason: object) -> str:
    if not isinstance(reason, str):
        raise ChangeRejected([FieldError("reason", "The reason must be text.", "invalid")])
    if len(reason) > MAX_REASON_LENGTH:
        raise ChangeRejected(
            [
                FieldError(
                    "reason",
                    f"Keep the reason under {MAX_REASON_LENGTH} characters (it has {len(reason)}).",
                    "max_length",
                )
            ]
        )
    if "\x00" in reason:
        raise ChangeRejected([FieldError("reason", "The reason contains a NUL byte.", "invalid")])
    return reason


def start(actor: ActorLike, source: str, reason: object) -> tuple[Actor, str]:
    """The opening checks of every service call: the actor, the source and the reason."""
    who = as_actor(actor)
    check_source(who, source)
    return who, check_reason(reason)


def require(actor: Actor, action: roles.Action, obj: object) -> None:
    # Automation is server-side code acting on its own authority (rollout policies).
    if actor.user is not None:
        roles.require(actor.user, action, obj)


def unknown_fields(changes: Mapping[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise ChangeRejected(
            [
                FieldError(name, "This field cannot be changed here.", "not_editable")
                for name in unknown
            ]
        )


def check_version(locked: Any, expected_version: object) -> None:
    """A stale edit is refused, and so is an edit that does not say which version it saw."""
    if isinstance(expected_version, bool) or not isinstance(expected_version, int):
        raise ChangeRejected(
            [FieldError("version", "Give the version you edited (an integer).", "required")]
        )
    if locked.version != expected_version:
        raise VersionConflict(locked.version, expected_version)


def full_clean(obj: models.Model, exclude: Iterable[str] = ()) -> None:
    try:
        obj.full_clean(exclude=list(exclude))
    except ValidationError as exc:
        raise ChangeRejected(
            [
                FieldError("" if field == "__all__" else field, message, "invalid")
                for field, messages in exc.message_dict.items()
                for message in messages
            ]
        ) from exc


def relative(path: str, prefix: str | None) -> str:
    """An engine error path made relative to the changed object's document path."""
    if prefix is None:
        return path
    if path == prefix:
        return ""
    if path.startswith(prefix + "."):
        return path[len(prefix) + 1 :]
    if path.startswith(prefix + "["):
        return path[len(prefix) :]
    return path
