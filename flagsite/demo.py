"""``/demo/``: the demo invoicing screen on the five seed flags, built on @flagsite/react.

The page gets the flags already evaluated for its first account (the bootstrap, in the shape of
``POST /api/v1/evaluate/all``), so the first paint shows served values; the bundle
(flagsite/static/demo/demo.js, built from sdk/js/demo) then follows the SSE stream with a client
key. The client key is derived from SECRET_KEY, so the page can show it without any raw secret
being stored: only its digest is, like every other key.
"""

from __future__ import annotations

import hashlib
import hmac
from base64 import urlsafe_b64encode
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apikeys.models import ApiKey, hash_key
from flags import evaluation
from flags.api.evaluate import details_json
from flags.history import stamp
from flags.models import AuditFields, Environment

DEMO_PROJECT = "demo"
DEFAULT_ENVIRONMENT = "development"  # production asks for approvals, which a demo should not need
DEFAULT_ACCOUNT = {"accountId": "acct-1001", "plan": "enterprise", "country": "US"}
KEY_NAME = "Demo page (/demo/)"


def demo_client_raw_key(environment: Environment) -> str:
    """The demo page's client key for one environment: stable, derivable only with SECRET_KEY."""
    message = f"flagsite-demo-client-key:{environment.pk}".encode()
    mac = hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256)
    return "fs_cli_" + urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def ensure_demo_client_key(environment: Environment) -> str | None:
    """The raw demo key, issuing its row on first use; None once someone revoked it."""
    raw = demo_client_raw_key(environment)
    digest = hash_key(raw)
    with transaction.atomic():
        existing = ApiKey.objects.select_for_update().filter(digest=digest).first()
        if existing is not None:
            return raw if existing.revoked_at is None else None
        key = ApiKey(
            environment=environment, kind=ApiKey.Kind.CLIENT, name=KEY_NAME, prefix=raw[:12],
            digest=digest,
        )  # fmt: skip
        stamp(key, user=None, source=AuditFields.Source.SYSTEM, reason="issued for the demo page")
        key.save()
    return raw


def demo_context(params: Any) -> dict[str, str]:
    account = {k: str(params.get(k) or v)[:64] for k, v in DEFAULT_ACCOUNT.items()}
    user = f"user-{account['accountId']}"
    return {"targetingKey": user, "userId": user, **account}


@require_GET
def demo_page(request: HttpRequest) -> HttpResponse:
    env_key = request.GET.get("env") or DEFAULT_ENVIRONMENT
    environment = (
        Environment.objects.select_related("project")
        .filter(project__key=DEMO_PROJECT, key=env_key)
        .first()
    )
    if environment is None:
        message = f"No environment {env_key!r} in the {DEMO_PROJECT!r} project: run seed_demo."
        return render(request, "demo/missing.html", {"message": message}, status=404)
    raw_key = ensure_demo_client_key(environment)
    if raw_key is None:
        message = "The demo page's client key was revoked."
        return render(request, "demo/missing.html", {"message": message}, status=503)
    context = demo_context(request.GET)
    snap = evaluation.get_snapshot(environment.pk)
    evaluate = snap.compiled.evaluate
    flags = {k: details_json(evaluate(k, context), client=True) for k in snap.client_order}
    bootstrap = {"version": snap.version, "context": context, "flags": flags}
    config = {
        "clientKey": raw_key,
        "baseUrl": "",
        "environment": environment.key,
        "context": {k: context[k] for k in DEFAULT_ACCOUNT},
    }
    return render(request, "demo/index.html", {"bootstrap": bootstrap, "config": config})
