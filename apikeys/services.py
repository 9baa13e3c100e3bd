"""Issuing and revoking API keys; owners of the key's project only (role "manage")."""

from __future__ import annotations

from functools import partial

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.utils import timezone

from apikeys.authentication import forget_key
from apikeys.invalidation import publish_revocation
from apikeys.models import ApiKey
from flags import roles
from flags.models import Environment


def issue(
    environment: Environment, *, kind: str, name: str, actor: User | AnonymousUser
) -> tuple[ApiKey, str]:
    """Creates a key; the raw secret is returned once and never stored."""
    roles.require(actor, "manage", environment)
    if kind not in ApiKey.Kind.values:
        raise ValueError(f"unknown key kind {kind!r}")
    return ApiKey.issue(environment=environment, kind=kind, name=name, created_by=actor)


def revoke(key: ApiKey, *, actor: User | AnonymousUser) -> ApiKey:
    """Revokes a key everywhere: this process forgets it now, every process on commit."""
    roles.require(actor, "manage", key.environment)
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=key.pk)
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
        forget_key(locked.digest)
        transaction.on_commit(partial(publish_revocation, locked.digest))
    return locked
