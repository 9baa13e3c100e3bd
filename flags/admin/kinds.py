"""What each flag kind means to the people editing it, and its sensible starting variants."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# kind -> (what "on" means, the variants a new flag of the kind starts with)
KINDS: dict[str, tuple[str, dict[str, Any]]] = {
    "release": (
        "Release flag: “on” shows the new feature. Start OFF, then roll out by percentage "
        "of accounts and widen as the numbers stay green.",
        {"on": True, "off": False},
    ),
    "experiment": (
        "Experiment: every variant is an arm of the test; split contexts by percentage "
        "(50/50 by default) and compare the arms' metrics.",
        {"control": "control", "treatment": "treatment"},
    ),
    "ops": (
        "Kill switch (ops flag): “on” means the switch is thrown — the guarded feature is "
        "OFF for everyone. Flags that require this one to be “off” fall back to their off "
        "variant at once. Leave it OFF in normal operation.",
        {"on": True, "off": False},
    ),
    "permission": (
        "Permission flag: “on” grants access. Serve “off” to everyone else and list who "
        "gets it in a rule (an account allowlist or a segment).",
        {"on": True, "off": False},
    ),
}


def kind_note(kind: str, variants: Mapping[str, Any]) -> str:
    note = KINDS.get(kind, ("", {}))[0]
    if kind == "ops" and "on" not in variants:
        note += " (This flag has no “on” variant: the switch is its first non-off variant.)"
    return note


def default_variants(kind: str, value_type: str) -> dict[str, Any]:
    """Starting variants of a new flag when none are given (booleans for boolean flags)."""
    variants = KINDS.get(kind, ("", {"on": True, "off": False}))[1]
    if value_type == "boolean":
        return {"on": True, "off": False}
    if value_type == "string":
        return {k: str(v) if not isinstance(v, bool) else k for k, v in variants.items()}
    return {}
