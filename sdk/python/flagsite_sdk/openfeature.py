"""An OpenFeature provider backed by FlagsiteClient (needs the ``openfeature`` extra).

    from openfeature import api
    api.set_provider(FlagsiteProvider(url=..., server_key=...))

Reasons and error codes are the engine's, which already use OpenFeature's vocabulary; each
resolution carries flag metadata (flag version, ruleset version, matched rule) for hooks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, TypeVar

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode as OFErrorCode
from openfeature.exception import ProviderNotReadyError
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType
from openfeature.provider import AbstractProvider, Metadata

from flagsite_sdk.client import FlagsiteClient
from flagsite_sdk.engine import ErrorCode, EvaluationDetails
from flagsite_sdk.store import Snapshot

T = TypeVar("T")
ObjectValue = Sequence[FlagValueType] | Mapping[str, FlagValueType]


class FlagsiteProvider(AbstractProvider):
    """Wraps ``client``, or builds (and then owns and closes) one from ``client_options``."""

    def __init__(self, client: FlagsiteClient | None = None, **client_options: Any) -> None:
        super().__init__()
        self._owns_client = client is None
        self.client = client if client is not None else FlagsiteClient(**client_options)
        self._flag_versions = _flag_versions(self.client.snapshot)
        self._announced_ready = self.client.ready
        self.client.on_change(self._on_ruleset)

    def get_metadata(self) -> Metadata:
        return Metadata(name="flagsite")

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        if not self.client.ready:
            raise ProviderNotReadyError("no ruleset yet: server unreachable, no cache or bootstrap")

    def shutdown(self) -> None:
        if self._owns_client:
            self.client.close()

    def _on_ruleset(self, snapshot: Snapshot) -> None:
        versions = _flag_versions(snapshot)
        old = self._flag_versions
        changed = sorted(k for k in versions.keys() | old.keys() if versions.get(k) != old.get(k))
        self._flag_versions = versions
        details = ProviderEventDetails(
            flags_changed=changed, metadata={"rulesetVersion": snapshot.version}
        )
        if not self._announced_ready:
            self._announced_ready = True
            self.emit_provider_ready(details)
        else:
            self.emit_provider_configuration_changed(details)

    # --- resolution ----------------------------------------------------------------------------

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context, _exact(bool))

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context, _exact(str))

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, evaluation_context, _as_int)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, evaluation_context, _as_float)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: ObjectValue,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[ObjectValue]:
        return self._resolve(flag_key, default_value, evaluation_context, _as_object)

    def _resolve(
        self,
        flag_key: str,
        default: T,
        evaluation_context: EvaluationContext | None,
        convert: Any,
    ) -> FlagResolutionDetails[T]:
        # The default goes to the engine only for its type check, which knows the flag's type.
        details = self.client.details(flag_key, to_context(evaluation_context), None)
        metadata = self._metadata(details)
        if details.error_code is not None:
            return _error(default, details.error_code, details.error_message, metadata)
        ok, value = convert(details.value)
        if not ok:
            message = f"flag {flag_key!r} serves {type(details.value).__name__}"
            return _error(default, ErrorCode.TYPE_MISMATCH, message, metadata)
        return FlagResolutionDetails(
            value=value,
            reason=str(details.reason),
            variant=details.variant,
            flag_metadata=metadata,
        )

    def _metadata(self, details: EvaluationDetails) -> dict[str, bool | int | float | str]:
        metadata: dict[str, bool | int | float | str] = {}
        version = self.client.version
        if version is not None:
            metadata["rulesetVersion"] = version
        if details.flag_version is not None:
            metadata["flagVersion"] = details.flag_version
        if details.rule_id is not None:
            metadata["ruleId"] = details.rule_id
        return metadata


def to_context(evaluation_context: EvaluationContext | None) -> dict[str, Any]:
    """OpenFeature's context as the engine's: attributes plus ``targetingKey``; dates become
    ISO strings, which the engine's before/after operators read."""
    if evaluation_context is None:
        return {}
    context = {key: _plain(value) for key, value in evaluation_context.attributes.items()}
    if evaluation_context.targeting_key:
        context["targetingKey"] = evaluation_context.targeting_key
    return context


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _flag_versions(snapshot: Snapshot | None) -> dict[str, int]:
    if snapshot is None:
        return {}
    ruleset = snapshot.ruleset
    return {
        key: flag.version for key in ruleset.flag_keys() if (flag := ruleset.flag(key)) is not None
    }


def _error(
    default: T, code: ErrorCode, message: str | None, metadata: dict[str, bool | int | float | str]
) -> FlagResolutionDetails[T]:
    return FlagResolutionDetails(
        value=default,
        reason="ERROR",
        error_code=OFErrorCode(str(code)),
        error_message=message,
        flag_metadata=metadata,
    )


def _exact(kind: type) -> Any:
    def convert(value: Any) -> tuple[bool, Any]:
        return type(value) is kind, value

    return convert


def _as_int(value: Any) -> tuple[bool, Any]:
    if type(value) is int:
        return True, value
    if type(value) is float and value.is_integer():
        return True, int(value)
    return False, None


def _as_float(value: Any) -> tuple[bool, Any]:
    if type(value) in (int, float):
        return True, float(value)
    return False, None


def _as_object(value: Any) -> tuple[bool, Any]:
    return isinstance(value, Mapping | list), value
