"""Issuing and revoking API keys: the only writes of ApiKey (usage times aside, apikeys.usage).

People's writes (``issue``, ``revoke``, ``revoke_many``) need the owner role ("manage") on the
key's project and a reason, and leave a history record with who, when, from where and why.
``provision`` is for set-up code that acts as the system (tests, benchmarks, the demo seed).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apikeys.authentication import forget_key
from apikeys.invalidation import publish_revocation
from apikeys.models import ApiKey, hash_key
from flags import roles
from flags.history import stamp
from flags.models import AuditFields, Environment

ADMIN = AuditFields.Source.ADMIN
SYSTEM = AuditFields.Source.SYSTEM


def issue(
    environment: Environment,
    *,
    kind: str,
    name: str,
    actor: User | AnonymousUser,
    reason: str,
    source: str = ADMIN,
) -> tuple[ApiKey, str]:
    """Creates a key; the raw secret is returned once and never stored."""
    roles.require(actor, "manage", environment)
    errors = {}
    if kind not in ApiKey.Kind.values:
        errors["kind"] = f"Unknown key kind {kind!r}: use one of {ApiKey.Kind.values}."
    if not name.strip():
        errors["name"] = "Give the key a name that says who uses it."
    if not reason.strip():
        errors["reason"] = "Say why the key is issued: it is kept in the audit."
    if errors:
        raise ValidationError(errors)
    return provision(
        environment, kind=kind, name=name.strip(), created_by=actor, source=source, reason=reason
    )


def provision(
    environment: Environment,
    *,
    kind: str,
    name: str,
    created_by: User | AnonymousUser | None = None,
    source: str = SYSTEM,
    reason: str = "",
) -> tuple[ApiKey, str]:
    """Creates a key without a role check, for code that acts as the system; the raw secret
    is returned once and never stored."""
    raw = ApiKey.generate(kind)
    user = created_by if isinstance(created_by, User) else None
    key = ApiKey(
        environment=environment,
        kind=kind,
        name=name,
        prefix=raw[:12],
        digest=hash_key(raw),
        created_by=user,
    )
    stamp(key, user=user, source=source, reason=reason or "issued")
    key.save()
    return key, raw


def revoke(key: ApiKey, *, actor: User | AnonymousUser, reason: str, source: str = ADMIN) -> ApiKey:
    """Revokes a key everywhere: this process forgets it now, every process on commit.
    Revoking a revoked key changes nothing (and records nothing)."""
    (revoked,) = revoke_many([key], actor=actor, reason=reason, source=source)
    return revoked


def revoke_many(
    keys: Iterable[ApiKey], *, actor: User | AnonymousUser, reason: str, source: str = ADMIN
) -> list[ApiKey]:
    """Revokes every key or none: the first key the actor may not revoke is named in the
    error, and nothing is written. Keys already revoked stay as they are."""
    wanted = sorted({key.pk for key in keys})
    if not reason.strip():
        raise ValidationError({"reason": "Say why the key is revoked: it is kept in the audit."})
    with transaction.atomic():
        # Locked in primary-key order, so two bulk revocations cannot deadlock each other.
        locked = list(
            ApiKey.objects.select_for_update(of=("self",))
            .select_related("environment__project")
            .filter(pk__in=wanted)
            .order_by("pk")
        )
        missing = sorted(set(wanted) - {key.pk for key in locked})
        if missing:
            raise ValidationError(f"Nothing was revoked: key #{missing[0]} no longer exists.")
        for key in locked:
            if not roles.can(actor, "manage", key.environment):
                raise PermissionDenied(
                    f"Nothing was revoked: you may not revoke {key} in {key.environment} "
                    "(only the project's owners may)."
                )
        user = actor if isinstance(actor, User) else None
        now = timezone.now()
        for key in locked:
            if key.revoked_at is None:
                key.revoked_at = now
                key.revoked_by = user
                stamp(key, user=user, source=source, reason=reason)
                key.save(update_fields=["revoked_at", "revoked_by"])
            forget_key(key.digest)
            transaction.on_commit(partial(publish_revocation, key.digest))
    return locked
