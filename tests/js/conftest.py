"""The JavaScript SDKs (sdk/js) from pytest: built once per session, run with the machine's node."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import ROOT

SDK_JS = ROOT / "sdk" / "js"


def _missing() -> list[str]:
    missing = []
    if shutil.which("node") is None or shutil.which("npm") is None:
        missing.append("node and npm")
    if not (SDK_JS / "node_modules").is_dir():
        missing.append("sdk/js/node_modules (bin/js-test runs npm ci)")
    return missing


@pytest.fixture(scope="session")
def js_sdk() -> Path:
    """sdk/js with its packages built (tsc -b is incremental: a no-op when nothing changed)."""
    missing = _missing()
    assert not missing, f"run bin/js-test first; missing: {', '.join(missing)}"
    subprocess.run(["npm", "run", "-s", "typecheck"], cwd=SDK_JS, check=True, timeout=180)
    return SDK_JS


def run_node(
    script: Path, payload: Any, *, cwd: Path, timeout: float = 120, args: Sequence[str] = ()
) -> Any:
    done = subprocess.run(
        ["node", str(script), *args],
        cwd=cwd,
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{script.name} failed:\n{done.stderr}"
    return json.loads(done.stdout)
