"""The Node engine (@flagsite/node) and the Python engine give the same answers: 100,000
generated contexts for the five seed flags, and 100,000 more over random rulesets."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from flagsite_sdk.engine import compile_ruleset

from flags.models import Environment
from flags.rulesets import build_ruleset_document
from tests.js import generated
from tests.js.conftest import run_node

SEED_FLAGS = ["new-pdf-engine", "redesigned-dashboard", "ai-chatbot", "bulk-invoice-api",
              "maintenance-mode"]  # fmt: skip


def python_answers(doc: dict[str, Any], cases: list[tuple[str, dict[str, Any]]]) -> list[list[Any]]:
    compiled = compile_ruleset(doc)
    out = []
    for flag, ctx in cases:
        d = compiled.evaluate(flag, ctx)
        reason = str(d.reason)
        code = str(d.error_code) if d.error_code is not None else None
        out.append([d.variant, reason, d.rule_id, code, bool(d.notes), d.value])
    return out


def compare(js_sdk: Path, batches: list[dict[str, Any]]) -> int:
    node = run_node(js_sdk / "tools" / "evaluate-batch.mjs", {"batches": batches}, cwd=js_sdk)
    # every document here passed the server's validator: Node compiles all of it
    assert node["refused"] == [None] * len(batches)
    assert node["broken"] == [[]] * len(batches)
    compared = 0
    for batch, js_results in zip(batches, node["results"], strict=True):
        py_results = python_answers(batch["ruleset"], batch["cases"])
        for case, py, js in zip(batch["cases"], py_results, js_results, strict=True):
            assert js == py, f"{case[0]} with {case[1]!r}: python {py}, node {js}"
            compared += 1
    return compared


def seed_contexts(rng: random.Random, n: int) -> list[dict[str, Any]]:
    contexts = []
    for _ in range(n):
        ctx = generated.context(rng)
        if rng.random() < 0.5:  # the demo's own shape, so every seed rule is reached often
            other = f"acct-{rng.randint(0, 9999)}"
            account = rng.choice(["acct-1001", "acct-1002", "acct-1003", other])
            ctx.update(accountId=account, plan=rng.choice(generated.PLANS),
                       country=rng.choice(generated.COUNTRIES))  # fmt: skip
        contexts.append(ctx)
    return contexts


@pytest.mark.django_db
def test_seed_flags_give_identical_variants_for_100k_contexts(js_sdk: Path) -> None:
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115 - closed with the process
    env = Environment.objects.get(project__key="demo", key="production")
    doc = build_ruleset_document(env, version=1)
    assert set(SEED_FLAGS) <= set(doc["flags"])
    rng = random.Random(16)
    contexts = seed_contexts(rng, 20_000)
    cases = [(flag, ctx) for ctx in contexts for flag in SEED_FLAGS]
    assert compare(js_sdk, [{"ruleset": doc, "cases": cases}]) == 100_000
    split = [c for c in python_answers(doc, cases) if c[1] == "SPLIT"]
    assert len({tuple(map(str, c[:1])) for c in split}) >= 3, "rollouts served several variants"


def test_random_rulesets_give_identical_answers_for_100k_contexts(js_sdk: Path) -> None:
    rng = random.Random(1616)
    batches = []
    for i in range(100):
        doc = generated.ruleset(rng, version=i)
        flags = [*doc["flags"], "no-such-flag"]
        cases = [(rng.choice(flags), generated.context(rng)) for _ in range(1000)]
        batches.append({"ruleset": doc, "cases": cases})
    assert compare(js_sdk, batches) == 100_000
