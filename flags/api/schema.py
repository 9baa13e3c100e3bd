"""The OpenAPI document as the server behaves (drf-spectacular's AutoSchema, completed).

Each operation lists every status it can send, with the body of flags.api.errors:
- 400 ``{"errors": [{path, message}]}`` (bad body, query or path: any operation);
- 401, 403 ``{"detail"}`` (every endpoint needs a key or a session);
- 404 where the path names something; 409 ``{detail, currentVersion?, approvalRequired?}`` on
  management writes other than the kill switch; 413 and 415 where there is a body; 429 where
  a rate limit applies.
Management lists are paginated (``limit``/``offset``, ``{count, next, previous, results}``),
and a DELETE that answers with a body is documented with the 200 it sends.
Operations that declare a status themselves (OFREP, analytics) keep their own description.
"""

# ruff: noqa: N815 - the API's camelCase
from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer
from rest_framework import serializers

from flags.api.pagination import Pagination


class ErrorItem(serializers.Serializer[Any]):
    path = serializers.CharField(help_text='The field, e.g. "rules[0].conditions[1].operator".')
    message = serializers.CharField()


class FieldErrors(serializers.Serializer[Any]):
    # Declared fields leave the class body (DRF's metaclass), so this hides no attribute.
    errors = ErrorItem(many=True)  # type: ignore[assignment]


class Detail(serializers.Serializer[Any]):
    detail = serializers.CharField()


class Conflict(serializers.Serializer[Any]):
    detail = serializers.CharField()
    currentVersion = serializers.IntegerField(required=False, help_text="On a stale version.")
    approvalRequired = serializers.BooleanField(required=False, help_text="Submit a request.")


class ImpactOut(serializers.Serializer[Any]):
    """One flag's estimate in one environment, from the last day's exposures."""

    environment = serializers.CharField()
    flag = serializers.CharField()
    changed = serializers.IntegerField(
        allow_null=True,
        help_text="Distinct contexts whose variant or value would change; null when exposures "
        "cannot tell (the rules read attributes exposures do not keep): see note.",
    )
    of = serializers.IntegerField(help_text="Distinct contexts compared.")
    sampled = serializers.BooleanField(
        help_text="Only the most recent contexts were compared (the cap was reached)."
    )
    note = serializers.CharField(help_text="How the number was obtained, or why there is none.")
    text = serializers.CharField(help_text="The estimate in words, as the admin shows it.")


class PreviewOut(serializers.Serializer[Any]):
    """What ``?dryRun=true`` answers instead of the object (flags.api.management)."""

    dryRun = serializers.BooleanField()
    summary = serializers.CharField()
    needsApproval = serializers.BooleanField()
    environments = serializers.ListField(child=serializers.DictField())
    impact = ImpactOut(many=True)


_ERRORS: dict[int, OpenApiResponse] = {
    400: OpenApiResponse(FieldErrors, description="Invalid input; each error names its field."),
    401: OpenApiResponse(Detail, description="No credentials, or an unknown or revoked key."),
    403: OpenApiResponse(Detail, description="Not allowed for this key, user or environment."),
    404: OpenApiResponse(Detail, description="No such object (or not visible to the caller)."),
    409: OpenApiResponse(Conflict, description="Stale version, or the change needs approval."),
    413: OpenApiResponse(Detail, description="The body is larger than the limit."),
    415: OpenApiResponse(Detail, description="The body is not application/json."),
    429: OpenApiResponse(Detail, description="Rate limit reached; see Retry-After."),
}
_PAGINATED: dict[str, type[serializers.Serializer[Any]]] = {}


def paginated(child: serializers.Serializer[Any]) -> type[serializers.Serializer[Any]]:
    """``{count, next, previous, results: [child]}``, one component per child serializer."""
    name = f"Paginated{type(child).__name__}List"
    if name not in _PAGINATED:
        fields = {
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": type(child)(many=True),
        }
        _PAGINATED[name] = type(name, (serializers.Serializer,), fields)
    return _PAGINATED[name]


class FlagsiteAutoSchema(AutoSchema):
    def _is_management(self) -> bool:
        from flags.api.management import ManagementView

        return isinstance(self.view, ManagementView)

    def _is_paginated_list(self, declared: Any) -> bool:
        return (
            self.method == "GET"
            and self._is_management()
            and isinstance(declared, serializers.ListSerializer)
        )

    # extend_schema wraps get_response_serializers and get_override_parameters in a subclass,
    # so the additions go into the private steps that call them.
    def _get_pagination_parameters(self) -> list[dict[str, Any]]:
        if self._is_paginated_list(self.get_response_serializers()):
            parameters: list[dict[str, Any]] = Pagination().get_schema_operation_parameters(
                self.view
            )
            return parameters
        return []

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        declared: Any = self.get_response_serializers()
        if self._is_paginated_list(declared):
            declared = paginated(declared.child)()
        if isinstance(declared, dict):
            responses: dict[Any, Any] = dict(declared)
        elif self.method == "DELETE" and declared is None:
            responses = {204: None}
        else:  # a DELETE that answers with a body (archive) sends 200, and so says the document
            responses = {200: declared}
        if self._has_dry_run():
            responses = self._with_preview(responses)
        if not self.path.startswith("/ofrep/"):  # OFREP: the protocol's shapes (ofrep_schema)
            for status in self._error_statuses():
                if not any(str(code) == str(status) for code in responses):
                    responses[status] = _ERRORS[status]
        bodies: dict[str, Any] = {}
        for code, serializer in responses.items():
            bodies[str(code)] = self._get_response_for_code(  # type: ignore[no-untyped-call]
                serializer, str(code), direction=direction
            )
        return bodies

    def _has_dry_run(self) -> bool:
        return any(getattr(p, "name", None) == "dryRun" for p in self.get_override_parameters())

    def _with_preview(self, responses: dict[Any, Any]) -> dict[Any, Any]:
        """A dry run answers 200 with a preview, in place of (or besides) the usual answer."""
        out = dict(responses)
        for code in ("200", "201"):
            match = next((c for c in out if str(c) == code), None)
            if match is not None and out[match] is not None:
                out[match] = PolymorphicProxySerializer(
                    component_name=f"{self.get_operation_id()}_or_preview",
                    serializers=[out[match], PreviewOut],
                    resource_type_field_name=None,
                )
        if not any(str(c) == "200" for c in out):
            out[200] = PreviewOut
        return out

    def _error_statuses(self) -> list[int]:
        statuses = [400, 401, 403]
        if "{" in self.path:
            statuses.append(404)
        has_body = self.method in ("POST", "PATCH", "PUT")
        # A view outside flags.api whose writes can conflict says so (rollouts: a plan's state).
        writes_conflict = self._is_management() or getattr(self.view, "writes_conflict", False)
        if writes_conflict and has_body and not self.path.endswith("/kill"):
            statuses.append(409)
        if self._is_management() and self.method == "DELETE":
            statuses.append(409)
        if has_body:
            statuses += [413, 415]
        if getattr(self.view, "throttle_classes", None):
            statuses.append(429)
        return statuses
