"""Form widgets that edit rules and serves as rows of inputs instead of raw JSON.

The JSON stays in a textarea (the value posted); flags/rules_widget.js hides it and draws an
editor that writes it back on every change. Without JavaScript the textarea still works.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.utils.safestring import SafeString
from flagsite_sdk.engine import OPERATORS


class TargetingWidget(forms.Textarea):
    """``kind`` is "rules" (flag rules), "segment-rules" (no serve) or "serve"."""

    def __init__(self, kind: str, variants: list[str] | None = None) -> None:
        super().__init__(attrs={"rows": 6, "cols": 80, "class": "vLargeTextField"})
        self.kind = kind
        self.variants = variants or []

    class Media:
        js = ("flags/rules_widget.js",)
        css = {"all": ("flags/rules_widget.css",)}

    def format_value(self, value: Any) -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return value
        return json.dumps(value, indent=2)

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        attrs = dict(attrs or {})
        attrs["data-targeting"] = self.kind
        attrs["data-variants"] = json.dumps(self.variants)
        attrs["data-operators"] = json.dumps(sorted(OPERATORS))
        return super().render(name, value, attrs, renderer)


class LinesWidget(forms.Textarea):
    """A list of strings, one a line."""

    def format_value(self, value: Any) -> str | None:
        if isinstance(value, list):
            return "\n".join(str(v) for v in value)
        return super().format_value(value)


class LinesField(forms.Field):
    widget = LinesWidget

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list):
            return [str(v) for v in value]
        return [line.strip() for line in str(value or "").splitlines() if line.strip()]


class RowsWidget(forms.Textarea):
    """A flag's variants (``editor="variants"``) or a state's prerequisites
    (``editor="prerequisites"``) as rows of inputs (flags/list_widgets.js); JSON underneath."""

    def __init__(self, editor: str, **data: Any) -> None:
        super().__init__(attrs={"rows": 4, "cols": 60, "class": "vLargeTextField"})
        self.editor = editor
        self.data = data

    class Media:
        js = ("flags/list_widgets.js",)
        css = {"all": ("flags/rules_widget.css",)}

    def format_value(self, value: Any) -> str | None:
        if value is None or value == "":
            return None
        return value if isinstance(value, str) else json.dumps(value, indent=2)

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        attrs = {**(attrs or {}), "data-editor": self.editor}
        for key, item in self.data.items():
            attrs[f"data-{key.replace('_', '-')}"] = (
                item if isinstance(item, str) else json.dumps(item)
            )
        return super().render(name, value, attrs, renderer)
