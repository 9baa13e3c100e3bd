"""API keys: one environment, one kind, stored as a SHA-256 digest with a visible prefix."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from flags.models import AuditFields, Environment

_KIND_TAGS = {"server": "srv", "client": "cli", "management": "mgt"}


def hash_key(raw_key: str) -> str:
    # Keys are 256-bit random tokens, so a fast digest is safe (no dictionary to attack) and
    # lets authentication find the row by index instead of trying a slow hash per key.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKey(models.Model):
    class Kind(models.TextChoices):
        SERVER = "server", "Server (SDKs: full ruleset)"
        CLIENT = "client", "Client (browsers: evaluate client-visible flags only)"
        MANAGEMENT = "management", "Management (CRUD as its creator)"

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="api_keys")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Who issued or revoked a key, when, from where and why. Usage times are not changes.
    history = HistoricalRecords(
        bases=[AuditFields], excluded_fields=["last_used_at"], cascade_delete_history=False
    )

    class Meta:
        ordering = ["environment", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @staticmethod
    def generate(kind: str) -> str:
        """A new raw secret; apikeys.services stores only its digest and prefix."""
        return f"fs_{_KIND_TAGS[kind]}_{secrets.token_urlsafe(32)}"
