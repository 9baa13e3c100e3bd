"""How the OpenAPI schema describes API-key authentication (loaded by ApikeysConfig.ready)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

DESCRIPTION = (
    "An API key scoped to one environment: `Authorization: Bearer fs_...` "
    "(or the `X-Flagsite-Key` header). Server keys read rulesets, client keys only evaluate "
    "client-visible flags, management keys act as the user who created them."
)


class ApiKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "apikeys.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": DESCRIPTION}


class EvaluationKeyScheme(ApiKeyScheme):  # type: ignore[no-untyped-call]
    # The async evaluation views take the same keys; drf-spectacular wants one scheme per
    # authentication class, so they get their own name.
    target_class = "flags.api.keys.AsyncKeyAuthentication"
    name = "evaluationKey"
