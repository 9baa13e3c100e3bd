"""Fixtures for analytics: an environment and API keys of each kind."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from apikeys.authentication import forget_key
from apikeys.services import provision
from flags.models import Environment, Project


@pytest.fixture
def environment(db: None) -> Environment:
    project = Project.objects.create(key="shop", name="Shop")
    return Environment.objects.create(project=project, key="production", name="Production")


@pytest.fixture
def key_for(environment: Environment) -> Callable[[str], str]:
    owner = get_user_model().objects.create_user("analyst", password="x-unused-x")

    def issue(kind: str) -> str:
        _, raw = provision(environment=environment, kind=kind, name=f"{kind} key", created_by=owner)
        return raw

    forget_key()
    return issue


@pytest.fixture
def events_client(key_for: Callable[[str], str]) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key_for('server')}")
    return client


def stamp(moment: datetime) -> str:
    return moment.isoformat()


def exposure(
    flag: str, variant: str, user: str, at: datetime, **assignments: str
) -> dict[str, Any]:
    return {
        "type": "exposure",
        "flag": flag,
        "variant": variant,
        "context_key": user,
        "timestamp": stamp(at),
        "assignments": assignments or {flag: variant},
    }


def metric(
    kind: str, user: str, at: datetime, assignments: dict[str, str], **extra: Any
) -> dict[str, Any]:
    event = {"type": kind, "context_key": user, "timestamp": stamp(at), "assignments": assignments}
    return event | extra
