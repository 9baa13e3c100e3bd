"""Flagsite Python SDK: ``from flagsite_sdk import FlagsiteClient``.

The client is imported lazily so that importing only the engine (as the server does) does
not pull in the HTTP stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["FlagsiteClient", "__version__"]

if TYPE_CHECKING:
    from flagsite_sdk.client import FlagsiteClient


def __getattr__(name: str) -> Any:
    if name == "FlagsiteClient":
        from flagsite_sdk.client import FlagsiteClient

        return FlagsiteClient
    raise AttributeError(f"module 'flagsite_sdk' has no attribute {name!r}")
