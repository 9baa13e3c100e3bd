"""Panels other apps add to a flag's admin page, without flags importing them.

An app higher in the layers (rollouts: the current stage and guardrails) registers a callable
in its AppConfig.ready(); the flag's change page renders each, in registration order. A panel
gets the flag and the request (for the viewer's roles) and returns its rendered HTML, or ""
to show nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from flags.models import Flag

logger = logging.getLogger(__name__)

FlagPanel = Callable[[Flag, HttpRequest], str]
_PANELS: dict[str, FlagPanel] = {}


def register_flag_panel(name: str, panel: FlagPanel) -> None:
    """Adds (or replaces, so a second ready() is harmless) the panel called ``name``."""
    _PANELS[name] = panel


def render_flag_panels(flag: Flag, request: HttpRequest) -> list[SafeString]:
    """Every registered panel's HTML for ``flag``. A failing panel is logged and shown as a
    one-line notice: the flag's page (and its kill link) must stay usable."""
    out: list[SafeString] = []
    for name, panel in _PANELS.items():
        try:
            html = panel(flag, request)
        except Exception:
            logger.exception("flag admin panel failed", extra={"panel": name, "flag": flag.pk})
            out.append(format_html('<p class="errornote">The {} panel failed to load.</p>', name))
            continue
        if html:
            # Panels render Django templates (auto-escaped); what they return is trusted HTML.
            out.append(mark_safe(html))  # noqa: S308
    return out
