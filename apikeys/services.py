"""Issuing and revoking API keys; owners of the key's project only (role "manage")."""

from __future__ import annotations

from functools import partial

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apikeys.authentication import forget_key
from apikeys.invalidation import publish_revocation
from apikeys.models import ApiKey
from flags import roles
from flags.history import stamp
from flags.models import AuditFields, Environment

ADMIN = AuditFields.Source.ADMIN


def issue(
    environment: Environment,
    *,
    kind: str,
    name: str,
    actor: User | AnonymousUser,
    source: str = ADMIN,
    reason: str = "",
) -> tuple[ApiKey, str]:
    """Creates a key; the raw secret is returned once and never stored."""
    roles.require(actor, "manage", environment)
    if kind not in ApiKey.Kind.values:
        raise ValidationError({"kind": f"Unknown key kind {kind!r}."})
    if not name.strip():
        raise ValidationError({"name": "Give the key a name that says who uses it."})
    return ApiKey.issue(
        environment=environment, kind=kind, name=name, created_by=actor, source=source,
        reason=reason,
    )  # fmt: skip


def revoke(key: ApiKey, *, actor: User | AnonymousUser, reason: str, source: str = ADMIN) -> ApiKey:
    """Revokes a key everywhere: this process forgets it now, every process on commit.
    Revoking a revoked key changes nothing (and records nothing)."""
    roles.require(actor, "manage", key.environment)
    if not reason.strip():
        raise ValidationError({"reason": "Say why the key is revoked: it is kept in the audit."})
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=key.pk)
        if locked.revoked_at is None:
            user = actor if isinstance(actor, User) else None
            locked.revoked_at = timezone.now()
            locked.revoked_by = user
            stamp(locked, user=user, source=source, reason=reason)
            locked.save(update_fields=["revoked_at", "revoked_by"])
        forget_key(locked.digest)
        transaction.on_commit(partial(publish_revocation, locked.digest))
    return locked
