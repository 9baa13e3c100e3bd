"""find_flag_references on a fixture tree (Python, TSX, TS, Django and Jinja templates,
aliases, nested .gitignore files), its exit codes, and an upload round trip through a real
server and the management API."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from apikeys.services import provision
from flags import services
from flags.models import Environment, Project
from hygiene.scanner import Reference, scan_paths
from tests.support.processes import ROOT, ServerProcess, child_env

pytestmark = pytest.mark.integration
FIXTURE = Path(__file__).parent / "fixtures" / "scan_tree"
ACTOR = services.Actor.automation("test")
SYSTEM = services.Source.SYSTEM


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "shop-web"
    shutil.copytree(FIXTURE, root)
    # Files the tree's .gitignore files exclude (made here: git would not keep them).
    (root / "build").mkdir()
    (root / "build" / "old.py").write_text('client.is_enabled("ignored-build")\n')
    (root / "web" / "api.generated.ts").write_text('client.isEnabled("ignored-generated");\n')
    (root / "web" / "sub" / "local.ts").write_text('client.isEnabled("ignored-nested");\n')
    return root


def keys_at(refs: list[Reference]) -> set[tuple[str, int, str, str]]:
    return {(r.path, r.line, r.flag_key, r.via) for r in refs}


def test_the_scanner_finds_every_form_and_honours_gitignore(tree: Path) -> None:
    refs = scan_paths([tree])
    assert keys_at(refs) == {
        ("app/views.py", 8, "new-checkout", "is_enabled"),
        ("app/views.py", 9, "banner", "variant"),
        ("app/views.py", 11, "new-checkout", "get_boolean_value"),
        ("app/views.py", 17, "kill-payments", "kill_switch"),
        ("app/views.py", 19, "kill-payments", "alias"),
        ("web/Checkout.tsx", 5, "new-checkout", "useFeatureFlag"),
        ("web/Checkout.tsx", 6, "banner", "useVariant"),
        ("web/Checkout.tsx", 7, "new-checkout", "getBooleanValue"),
        ("web/sub/node.ts", 2, "kill-payments", "isEnabled"),
        ("templates/home.html", 3, "banner", "flag_enabled"),
        ("templates/home.html", 4, "banner", "flag_variant"),
        ("templates/base.jinja", 2, "new-checkout", "flag_enabled"),
    }
    context = {(r.path, r.line): r.context for r in refs}
    assert context[("app/views.py", 8)] == 'if request.flags.is_enabled("new-checkout"):'
    assert context[("web/Checkout.tsx", 6)] == "const banner = useVariant<string>('banner');"
    assert not any(r.flag_key.startswith("ignored") for r in refs)


def test_without_the_gitignore_the_ignored_files_are_found(tree: Path) -> None:
    (tree / ".gitignore").unlink()
    (tree / "web" / "sub" / ".gitignore").unlink()
    found = {r.flag_key for r in scan_paths([tree])}
    assert {"ignored-build", "ignored-generated", "ignored-nested"} <= found


@pytest.fixture
def shop(db: None) -> Project:
    project = services.create_project(key="shop", name="Shop", actor=ACTOR, source=SYSTEM)
    for key in ("new-checkout", "banner", "kill-payments"):
        services.create_flag(
            project, data={"key": key, "name": key}, actor=ACTOR, source=SYSTEM, reason="t"
        )
    return project


def run_command(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("find_flag_references", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()


def test_exit_codes(tree: Path, shop: Project) -> None:
    code, out = run_command(str(tree), "--project", "shop")
    assert code == 0, out
    assert "app/views.py:8: new-checkout [is_enabled]" in out
    assert "12 reference(s) to 3 flag(s)" in out

    (tree / "app" / "typo.py").write_text('flags.is_enabled("new-chekout")\n')
    code, out = run_command(str(tree), "--project", "shop")
    assert code == 1
    assert "app/typo.py:1: new-chekout (unknown)" in out
    (tree / "app" / "typo.py").unlink()

    services.archive_flag(shop.flags.get(key="banner"), actor=ACTOR, source=SYSTEM, reason="gone")
    code, out = run_command(str(tree), "--project", "shop", "--json")
    assert code == 1
    body = json.loads(out[: out.rindex("}") + 1])
    assert body["archived"] == ["banner"]
    assert body["unknown"] == []

    assert run_command(str(tree / "nope"), "--project", "shop")[0] == 2
    assert run_command(str(tree), "--project", "nope")[0] == 2


def test_a_bad_alias_config_is_a_usage_error(tree: Path, shop: Project) -> None:
    (tree / ".flagsite.yaml").write_text("aliases:\n  patterns: ['(?P<alias>X)']\n")
    code, out = run_command(str(tree), "--project", "shop")
    assert code == 2
    assert "needs groups 'alias' and 'key'" in out


def _upload(server: ServerProcess, key: str, tree: Path, commit: str) -> subprocess.Popen[str]:
    from django.db import connection

    cmd = [
        sys.executable, "manage.py", "find_flag_references", str(tree), "--upload",
        "--server", server.url, "--project", "shop", "--repository", "shop-web",
        "--commit", commit, "--json",
    ]  # fmt: skip
    env = child_env(connection.settings_dict["NAME"], {"FLAGSITE_API_KEY": key})
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.django_db(transaction=True)
def test_upload_round_trip(tree: Path, flagsite_server: ServerProcess) -> None:
    owner = User.objects.create_superuser("owner", "owner@example.test", "pw-owner-123")
    project = services.create_project(key="shop", name="Shop", actor=owner, source=SYSTEM)
    for key in ("new-checkout", "banner", "kill-payments"):
        services.create_flag(project, data={"key": key, "name": key}, actor=owner, source=SYSTEM)
    dev = Environment.objects.get(project=project, key="development")
    _, raw = provision(environment=dev, kind="management", name="ci", created_by=owner)

    first = _upload(flagsite_server, raw, tree, "c0ffee1")
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert json.loads(out)["removed"] == []

    # The next commit drops the template's references and misspells a key.
    (tree / "templates" / "home.html").write_text("<main></main>\n")
    (tree / "app" / "typo.py").write_text('flags.is_enabled("new-chekout")\n')
    second = _upload(flagsite_server, raw, tree, "c0ffee2")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 1, err
    body = json.loads(out)
    assert body["unknown"] == ["new-chekout"]
    assert {(r["flagKey"], r["path"]) for r in body["removed"]} == {
        ("banner", "templates/home.html")
    }

    listed = httpx.get(
        f"{flagsite_server.url}/api/v1/projects/shop/code-references",
        headers={"Authorization": f"Bearer {raw}"},
        timeout=10,
    ).json()
    assert {(r["path"], r["line"]) for r in listed["banner"]} == {
        ("app/views.py", 9),
        ("web/Checkout.tsx", 6),
    }
    assert listed["new-checkout"][0]["commit"] == "c0ffee2"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"commit": "x", "references": []}, "repository"),
        ({"repository": "r", "commit": "x", "references": [{"path": "a", "line": 1}]}, "flagKey"),
        (
            {
                "repository": "r",
                "commit": "x",
                "references": [{"flagKey": "a", "path": "a", "line": 0}],
            },
            "line",
        ),
        (  # past the column's 32 bits (a fuzzer's find: it was a 500)
            {
                "repository": "r",
                "commit": "x",
                "references": [{"flagKey": "a", "path": "a", "line": 364_449_336_363}],
            },
            "line",
        ),
    ],
)
def test_bad_uploads_name_the_field(
    client, shop: Project, body: dict[str, object], field: str
) -> None:
    owner = User.objects.create_superuser("owner", "owner@example.test", "pw-owner-123")
    dev = Environment.objects.get(project=shop, key="development")
    _, raw = provision(environment=dev, kind="management", name="ci", created_by=owner)
    answer = client.post(
        "/api/v1/projects/shop/code-references", body, content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )  # fmt: skip
    assert answer.status_code == 400
    assert field in json.dumps(answer.json())
