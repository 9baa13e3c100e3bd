"""Exceptions raised by flags.services, shared by the admin and the API."""

from __future__ import annotations

from dataclasses import dataclass

# Top-level keys of a flag or segment in the ruleset document -> the model field they come from.
DOCUMENT_FIELDS = {
    "key": "key",
    "description": "description",
    "valueType": "value_type",
    "variants": "variants",
    "salt": "salt",
    "clientVisible": "client_visible",
    "enabled": "enabled",
    "offVariant": "off_variant",
    "rules": "rules",
    "defaultServe": "default_serve",
    "prerequisites": "prerequisites",
    "keyAttribute": "key_attribute",
    "included": "included",
    "excluded": "excluded",
}


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with a proposed change.

    ``path`` is relative to the changed object when the problem is inside it, using the ruleset
    document's names (``rules[0].conditions[1].operator``, ``defaultServe.rollout.variants``)
    or a model field name (``key``, ``reason``). A problem the change causes elsewhere keeps the
    engine's full document path (``flags.other-flag.prerequisites[0].flag``) and has no field.
    """

    path: str
    message: str
    code: str = ""

    @property
    def field(self) -> str | None:
        """The model (or form) field the error belongs on, None for a document-wide error."""
        if not self.path or self.path.startswith(("flags.", "segments.")):
            return None
        head = self.path.split(".", 1)[0].split("[", 1)[0]
        return DOCUMENT_FIELDS.get(head, head)


class ChangeRejected(Exception):  # noqa: N818 - public name fixed by the design
    """The change would produce a ruleset the engine rejects, or breaks a model rule."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.path or '(change)'}: {e.message}" for e in errors))

    def by_field(self) -> dict[str | None, list[FieldError]]:
        out: dict[str | None, list[FieldError]] = {}
        for error in self.errors:
            out.setdefault(error.field, []).append(error)
        return out


class VersionConflict(Exception):  # noqa: N818 - public name fixed by the design
    """Someone saved the object since the caller read it; nothing was written."""

    def __init__(self, current_version: int, expected_version: int | None = None) -> None:
        self.current_version = current_version
        self.expected_version = expected_version
        super().__init__(
            f"this was changed by someone else (now version {current_version}, "
            f"you edited version {expected_version}); reload and apply your change again"
        )


class ApprovalRequired(Exception):  # noqa: N818 - reads better at the call site
    """The environment requires a second person's approval: use request_change instead."""

    def __init__(self, environment_key: str) -> None:
        self.environment_key = environment_key
        super().__init__(
            f"changes in {environment_key!r} need approval: submit a change request instead"
        )


class StaleChangeRequest(VersionConflict):
    """What a change request changes moved on after it was made: it can no longer apply."""

    def __init__(self, request_id: int, base_version: int | None) -> None:
        super().__init__(0, base_version)
        self.args = (
            f"change request #{request_id} is stale: what it changes was edited after it was "
            "made; propose it again on the current version",
        )

    def __str__(self) -> str:
        return str(self.args[0])
