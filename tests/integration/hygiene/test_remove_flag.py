"""remove_flag on fixture files: the flag's checks become the served value, dead branches and
the imports they used go, and the result still imports and passes the fixture's own tests
(pytest for the Python package, node for the JavaScript module)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from flags import services
from hygiene.remover import Served, rewrite_python
from hygiene.remover_ts import rewrite_script

pytestmark = pytest.mark.integration
FIXTURE = Path(__file__).parent / "fixtures" / "removal"
ACTOR = services.Actor.automation("test")


@pytest.fixture
def code(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(FIXTURE, root)
    return root


def fixture_tests_pass(root: Path) -> None:
    python = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "checks_shop.py"],
        cwd=root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert python.returncode == 0, python.stdout + python.stderr
    imported = subprocess.run(
        [sys.executable, "-c", "import shop.checkout"], cwd=root, capture_output=True, text=True
    )
    assert imported.returncode == 0, imported.stderr
    if shutil.which("node"):
        node = subprocess.run(
            ["node", "web/checks_checkout.js"], cwd=root, capture_output=True, text=True
        )
        assert node.returncode == 0, node.stderr


def remove(*args: str) -> str:
    out = StringIO()
    call_command("remove_flag", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_diff_then_apply(code: Path) -> None:
    fixture_tests_pass(code)  # the fixture's tests pass with the flag in place
    before = (code / "shop" / "checkout.py").read_text()

    diff = remove("new-checkout", "--serve", "on", str(code))
    assert "--- a/shop/checkout.py" in diff
    assert "-from shop.legacy import old_total" in diff
    assert "+    return new_total(items)" in diff
    assert "--- a/web/checkout.js" in diff
    assert "--- a/web/Banner.tsx" in diff
    assert (code / "shop" / "checkout.py").read_text() == before  # a diff changes nothing

    remove("new-checkout", "--serve", "on", str(code), "--apply")
    checkout = (code / "shop" / "checkout.py").read_text()
    assert "is_enabled" not in checkout
    assert "CHECKOUT_FLAG" not in checkout
    assert "old_total" not in checkout
    assert "from shop.pricing import new_total" in checkout
    assert 'flags.variant("banner") == "sale"' in checkout  # other flags are untouched
    script = (code / "web" / "checkout.js").read_text()
    assert "isEnabled" not in script
    assert "legacy" not in script
    banner = (code / "web" / "Banner.tsx").read_text()
    assert "useFeatureFlag" not in banner
    assert 'import { useVariant } from "@flagsite/react";' in banner
    assert "return null" not in banner
    fixture_tests_pass(code)

    # Nothing left to do: a second run changes nothing.
    assert remove("new-checkout", "--serve", "on", str(code)) == ""


@pytest.mark.django_db
def test_the_variant_and_its_value_come_from_the_flag(code: Path) -> None:
    project = services.create_project(key="shop", name="Shop", actor=ACTOR, source="system")
    services.create_flag(
        project,
        data={"key": "banner", "name": "Banner", "value_type": "string",
              "variants": {"off": "", "sale": "50% off"}},
        actor=ACTOR, source="system",
    )  # fmt: skip
    diff = remove("banner", "--serve", "sale", str(code / "shop"))
    assert '+    return "Sale!"' in diff
    assert '-    return ""' in diff
    with pytest.raises(CommandError, match="has no variant 'gold'") as error:
        remove("banner", "--serve", "gold", str(code))
    assert error.value.returncode == 2


ON, OFF = Served("on", True), Served("off", False)


@pytest.mark.parametrize(
    ("source", "served", "expected"),
    [
        ("x = 1 if c.is_enabled('k') else 2\n", ON, "x = 1\n"),
        ("x = 1 if c.is_enabled('k') else 2\n", OFF, "x = 2\n"),
        ("x = not c.is_enabled('k')\n", ON, "x = False\n"),
        ("if c.is_enabled('k') or y:\n    a()\n", ON, "a()\n"),
        ("if c.is_enabled('k') or y:\n    a()\n", OFF, "if y:\n    a()\n"),
        ("if y and c.is_enabled('k'):\n    a()\n", ON, "if y:\n    a()\n"),
        ("if c.is_enabled('k'):\n    a()\nelif y:\n    b()\n", OFF, "if y:\n    b()\n"),
        ("if not c.is_enabled('k'):\n    a()\nb()\n", ON, "b()\n"),
        ("v = c.get_boolean_value('k', False)\n", OFF, "v = False\n"),
        ("v = c.variant('k')\n", ON, "v = 'on'\n"),
        ("if c.variant('k') == 'on':\n    a()\nb()\n", ON, "a()\nb()\n"),
        ("if c.variant('k') != 'on':\n    a()\nb()\n", ON, "b()\n"),
        ("v = c.is_enabled('other')\n", ON, "v = c.is_enabled('other')\n"),
        ("@kill_switch('k')\ndef v(r):\n    return 1\n", ON, "def v(r):\n    return 1\n"),
    ],
)
def test_python_rewrites(source: str, served: Served, expected: str) -> None:
    assert rewrite_python(source, "k", served).after == expected


@pytest.mark.parametrize(
    ("source", "served", "expected"),
    [
        ("const x = c.isEnabled('k') ? 1 : 2;\n", ON, "const x = 1;\n"),
        ("const x = c.isEnabled('k') ? 1 : 2;\n", OFF, "const x = 2;\n"),
        ("const x = useFeatureFlag('k') || y;\n", OFF, "const x = y;\n"),
        ('const x = c.variant("k") === "on";\n', ON, "const x = true;\n"),
        ('const x = c.variant("k") === "beta";\n', ON, "const x = false;\n"),
        ("const x = c.getBooleanValue('k', false);\n", ON, "const x = true;\n"),
        ("const x = c.isEnabled('other');\n", ON, "const x = c.isEnabled('other');\n"),
    ],
)
def test_script_rewrites(source: str, served: Served, expected: str) -> None:
    assert rewrite_script(source, "k", served, "a.ts", ".ts").after == expected
