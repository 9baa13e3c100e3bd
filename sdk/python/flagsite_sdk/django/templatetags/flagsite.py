"""``{% load flagsite %}``, then ``{% flag_enabled "new-ui" as new_ui %}{% if new_ui %}...``,
``{% flag_variant "checkout" %}`` or ``{% flag_value "banner-text" "Welcome" %}``."""

from __future__ import annotations

from typing import Any

from django import template

from flagsite_sdk.django.context import RequestFlags, flags_for

register = template.Library()


def _flags(context: template.Context) -> RequestFlags | None:
    request = context.get("request")
    return flags_for(request) if request is not None else None


@register.simple_tag(takes_context=True)
def flag_enabled(context: template.Context, key: str, default: bool = False) -> bool:
    flags = _flags(context)
    return flags.is_enabled(key, default) if flags is not None else default


@register.simple_tag(takes_context=True)
def flag_variant(context: template.Context, key: str, default: str = "") -> str:
    flags = _flags(context)
    variant = flags.variant(key) if flags is not None else None
    return variant if variant is not None else default


@register.simple_tag(takes_context=True)
def flag_value(context: template.Context, key: str, default: Any = None) -> Any:
    flags = _flags(context)
    return flags.value(key, default) if flags is not None else default
