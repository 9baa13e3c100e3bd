"""The entry every caller uses: a list of changes, who, why, and how (apply, propose, dry run)."""

from __future__ import annotations

from collections.abc import Sequence

from flags.services.base import ActorLike, start
from flags.services.pipeline import Authority, Change, Mode, Outcome, run


def submit(
    changes: Sequence[Change],
    *,
    actor: ActorLike,
    source: str,
    reason: object = "",
    mode: Mode = Mode.APPLY,
    authority: Authority = Authority.NORMAL,
) -> Outcome:
    """Runs ``changes`` through the write pipeline (see flags.services.pipeline)."""
    who, text = start(actor, source, reason)
    return run(changes, who=who, source=source, reason=text, mode=mode, authority=authority)


def saved(outcome: Outcome, fallback: object) -> object:
    """The first row the write saved (the edited object), or ``fallback`` when nothing was."""
    return outcome.saved[0] if outcome.saved else fallback
