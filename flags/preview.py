"""What a change alters, in words: the preview shown before saving and kept on change requests.

Impact estimates ("412 of the last day's evaluated contexts would change") need exposure
data, which lives in the analytics app; flags cannot import it, so analytics registers an
estimator here (``register_impact_estimator``) and the preview asks every registered one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flags.services.pipeline import EnvironmentEffect


@dataclass(frozen=True, slots=True)
class Impact:
    """How many recently evaluated contexts a change moves to another variant or value.

    ``changed`` is None when no honest count exists (``note`` says why); ``of`` is the number
    of distinct contexts compared, ``sampled`` whether they are only the most recent ones.
    """

    changed: int | None
    of: int
    sampled: bool = False
    note: str = ""

    def words(self) -> str:
        if self.changed is None:
            return f"estimate unavailable: {self.note}"
        if self.sampled:
            text = (
                f"{self.changed:,} of the {self.of:,} most recently evaluated contexts "
                "(a sample of the last day's) would change"
            )
        else:
            text = f"{self.changed:,} of the last day's {self.of:,} evaluated contexts would change"
        return f"{text} ({self.note})" if self.note else text

    def as_json(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "of": self.of,
            "sampled": self.sampled,
            "note": self.note,
            "text": self.words(),
        }


# (environment id, flag key, ruleset document before, after) -> an estimate, or None when the
# estimator has nothing to say. Called only for previews and change requests, never while
# evaluating.
ImpactEstimator = Callable[[int, str, Mapping[str, Any], Mapping[str, Any]], Impact | None]
_ESTIMATORS: list[ImpactEstimator] = []


def register_impact_estimator(estimator: ImpactEstimator) -> None:
    if estimator not in _ESTIMATORS:
        _ESTIMATORS.append(estimator)


def _impact(
    env_id: int, key: str, before: Mapping[str, Any], after: Mapping[str, Any]
) -> Impact | None:
    for estimator in _ESTIMATORS:
        try:
            estimate = estimator(env_id, key, before, after)
        except Exception:
            # An estimate is a courtesy: it never stops a preview or a change request.
            estimate = None
        if estimate is not None:
            return estimate
    return None


def _serve(serve: Mapping[str, Any]) -> str:
    if "variant" in serve:
        return str(serve["variant"])
    rollout = serve.get("rollout") or {}
    by = rollout.get("bucketBy", "targetingKey")
    shares = ", ".join(
        f"{v.get('weight', 0) / 1000:g}% {v.get('variant')}" for v in rollout.get("variants", [])
    )
    return f"{shares} (by {by})"


def _flag_sentence(entry: Mapping[str, Any]) -> str:
    if not entry.get("enabled"):
        return f"OFF · everyone → {entry.get('offVariant')}"
    parts = ["ON"]
    for rule in entry.get("rules") or []:
        parts.append(f"rule {rule.get('id')} → {_serve(rule.get('serve') or {})}")
    parts.append(f"everyone else → {_serve(entry.get('defaultServe') or {})}")
    if entry.get("prerequisites"):
        parts.insert(1, "needs " + ", ".join(p.get("flag", "?") for p in entry["prerequisites"]))
    return " · ".join(parts)


def describe_effect(effect: EnvironmentEffect) -> dict[str, Any]:
    """One environment's part of a preview: its flags, each before and after in sentences."""
    env = effect.environment
    flags = []
    for key in effect.flags:
        before = (effect.before.get("flags") or {}).get(key) or {}
        after = (effect.after.get("flags") or {}).get(key) or {}
        estimate = _impact(env.pk, key, effect.before, effect.after)
        flags.append(
            {
                "flag": key,
                "before": _flag_sentence(before) if before else "(not served)",
                "after": _flag_sentence(after) if after else "(not served)",
                # ``impact`` is the estimate in words (what the sentence shows); ``estimate``
                # the same as numbers, for the API.
                "impact": estimate.words() if estimate is not None else None,
                "estimate": estimate.as_json() if estimate is not None else None,
            }
        )
    return {
        "environment": env.key,
        "requiresApproval": env.requires_approval,
        "needsApproval": effect.needs_approval,
        "flags": flags,
    }


def sentence(preview: list[dict[str, Any]]) -> str:
    """The preview as one line: "This change alters production for ai-chatbot: 412 of ..."."""
    if not preview:
        return "This change alters no environment's evaluation."
    parts = []
    for env in preview:
        names = ", ".join(
            f["flag"] + (f": {f['impact']}" if f.get("impact") else "") for f in env["flags"]
        )
        parts.append(f"{env['environment']} for {names or 'no flag'}")
    return "This change alters " + "; ".join(parts) + "."


def impacts(preview: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every flag's estimate, flat: what the API's dry run returns as ``impact``."""
    return [
        {"environment": env["environment"], "flag": f["flag"], **f["estimate"]}
        for env in preview
        for f in env["flags"]
        if f.get("estimate")
    ]


def _value(name: str, value: Any) -> str:
    if name == "enabled":
        return "ON" if value else "OFF"
    if name == "default_serve" and isinstance(value, Mapping):
        return _serve(value)
    if name == "rules" and isinstance(value, list):
        if not value:
            return "no rules"
        return "; ".join(
            f"rule {r.get('id')} → {_serve(r.get('serve') or {})}"
            for r in value
            if isinstance(r, Mapping)
        )
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(none)"
    return str(value)


def field_lines(operations: list[dict[str, Any]]) -> list[str]:
    """The fields a stored change sets, in words (percentages as percentages)."""
    lines = []
    for op in operations:
        what = op.get("kind", "change")
        for name, value in (op.get("changes") or {}).items():
            lines.append(f"{what}: {name.replace('_', ' ')} → {_value(name, value)}")
        if op.get("note"):
            lines.append(f"{what}: {op['note'].strip('()')}")
    return lines
