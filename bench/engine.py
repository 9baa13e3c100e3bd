"""Engine benchmark: the five seed flags over 10,000 contexts, against floors and peers.

Run: .venv/bin/python bench/engine.py   (about a minute; prints a table and pass/fail)

Every implementation evaluates the same five flags for the same contexts in the same
process. Peer contexts are converted to each library's own shape before timing, so
the peers are not charged for that conversion; we are charged for nothing either,
since our engine takes the plain dict as is.
"""

from __future__ import annotations

import gc
import logging
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import mmh3

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "sdk" / "python")]

from flagsite_sdk.engine import compile_ruleset, validate_ruleset  # noqa: E402

N_CONTEXTS = 10_000
REPEATS = 7
PEER_REPEATS = 3
FLAG_KEYS = [
    "new-pdf-engine",
    "redesigned-dashboard",
    "ai-chatbot",
    "bulk-invoice-api",
    "maintenance-mode",
]
ENTERPRISE = ["acc-1", "acc-2", "acc-3"]
Check = Callable[[str, Any], Any]


def make_contexts() -> list[dict[str, Any]]:
    rng = random.Random(20240601)
    plans = ["free", "team", "enterprise"]
    countries = ["US", "UK", "DE", "FR", "IN"]
    return [
        {
            "targetingKey": f"user-{i}",
            "accountId": f"acc-{rng.randrange(4_000)}",
            "plan": rng.choice(plans),
            "country": rng.choice(countries),
        }
        for i in range(N_CONTEXTS)
    ]


def boolean_flag(key: str, **fields: Any) -> dict[str, Any]:
    flag: dict[str, Any] = {
        "key": key,
        "version": 1,
        "valueType": "boolean",
        "variants": {"on": True, "off": False},
        "enabled": True,
        "offVariant": "off",
        "salt": key,
        "rules": [],
        "defaultServe": {"variant": "off"},
    }
    flag.update(fields)
    return flag


def split(on: int, bucket_by: str) -> dict[str, Any]:
    return {
        "rollout": {
            "bucketBy": bucket_by,
            "fallbackVariant": "off",
            "variants": [
                {"variant": "on", "weight": on},
                {"variant": "off", "weight": 100_000 - on},
            ],
        }
    }


def seed_flags(suffix: str = "") -> list[dict[str, Any]]:
    chatbot = {
        "id": "free-us-uk",
        "conditions": [
            {"attribute": "plan", "operator": "equals", "values": ["free"]},
            {"attribute": "country", "operator": "in", "values": ["US", "UK"]},
        ],
        "serve": {"variant": "on"},
    }
    allow = {
        "id": "enterprise",
        "conditions": [{"attribute": "accountId", "operator": "in", "values": ENTERPRISE}],
        "serve": {"variant": "on"},
    }
    return [
        boolean_flag("new-pdf-engine" + suffix, defaultServe=split(5_000, "accountId")),
        boolean_flag("redesigned-dashboard" + suffix, defaultServe=split(50_000, "targetingKey")),
        boolean_flag("ai-chatbot" + suffix, rules=[chatbot]),
        boolean_flag("bulk-invoice-api" + suffix, rules=[allow]),
        boolean_flag("maintenance-mode" + suffix, enabled=False, defaultServe={"variant": "on"}),
    ]


def document(flags: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemaVersion": 1,
        "project": "invoicing",
        "environment": "production",
        "version": 1,
        "flags": {f["key"]: f for f in flags},
        "segments": {},
    }


def time_ns_per_eval(
    check: Check, contexts: list[Any], keys: list[str], repeats: int
) -> tuple[float, list[int]]:
    """Median ns per evaluation over `repeats` passes, plus per-flag 'on' counts."""
    counts = [sum(1 for c in contexts if check(k, c)) for k in keys]
    samples: list[float] = []
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.perf_counter_ns()
            for key in keys:
                for ctx in contexts:
                    check(key, ctx)
            samples.append((time.perf_counter_ns() - start) / (len(keys) * len(contexts)))
    finally:
        gc.enable()
    return statistics.median(samples), counts


def our_checks(contexts: list[dict[str, Any]]) -> dict[str, tuple[Check, list[Any]]]:
    compiled = compile_ruleset(document(seed_flags()))
    is_enabled = compiled.is_enabled
    evaluate = compiled.evaluate
    return {
        "flagsite is_enabled": (lambda k, c: is_enabled(k, c), contexts),
        "flagsite evaluate (details)": (lambda k, c: evaluate(k, c, False).value, contexts),
    }


def floor_checks(contexts: list[dict[str, Any]]) -> dict[str, tuple[Check, list[Any]]]:
    hash32 = mmh3.hash
    cuts = dict.fromkeys(FLAG_KEYS, 50_000)
    answers = dict.fromkeys(FLAG_KEYS, True)
    return {
        "floor: mmh3 + dict lookup": (
            lambda k, c: hash32(k + "." + c["targetingKey"], 0, False) % 100_000 < cuts[k],
            contexts,
        ),
        "floor: dict lookup": (lambda k, c: answers[k], contexts),
    }


def unleash_check(contexts: list[dict[str, Any]]) -> tuple[Check, list[Any]]:
    from UnleashClient import UnleashClient  # type: ignore[attr-defined]
    from UnleashClient.cache import FileCache

    def constraint(name: str, values: list[str]) -> dict[str, Any]:
        return {"contextName": name, "operator": "IN", "values": values}

    def rollout(pct: int, stickiness: str, group: str) -> dict[str, Any]:
        params = {"rollout": str(pct), "stickiness": stickiness, "groupId": group}
        return {"name": "flexibleRollout", "parameters": params}

    features = [
        {"name": "new-pdf-engine", "enabled": True,
         "strategies": [rollout(5, "accountId", "new-pdf-engine")]},
        {"name": "redesigned-dashboard", "enabled": True,
         "strategies": [rollout(50, "userId", "redesigned-dashboard")]},
        {"name": "ai-chatbot", "enabled": True,
         "strategies": [{"name": "default", "constraints": [
             constraint("plan", ["free"]), constraint("country", ["US", "UK"])]}]},
        {"name": "bulk-invoice-api", "enabled": True,
         "strategies": [{"name": "default", "constraints": [constraint("accountId", ENTERPRISE)]}]},
        {"name": "maintenance-mode", "enabled": False, "strategies": [{"name": "default"}]},
    ]  # fmt: skip
    cache = FileCache("flagsite-bench", directory=tempfile.mkdtemp(prefix="unleash-bench-"))
    cache.bootstrap_from_dict({"version": 1, "features": features})
    client = UnleashClient(
        url="http://127.0.0.1:9/api",  # never contacted: fetch_toggles=False
        app_name="flagsite-bench",
        disable_metrics=True,
        disable_registration=True,
        cache=cache,
    )
    client.initialize_client(fetch_toggles=False)
    native = [
        {
            "userId": c["targetingKey"],
            "properties": {"accountId": c["accountId"], "plan": c["plan"], "country": c["country"]},
        }
        for c in contexts
    ]
    return (lambda k, c: client.is_enabled(k, c)), native


def growthbook_check(contexts: list[dict[str, Any]]) -> tuple[Check, list[Any]]:
    from growthbook import GrowthBook

    features = {
        "new-pdf-engine": {"defaultValue": False, "rules": [
            {"force": True, "coverage": 0.05, "hashAttribute": "accountId"}]},
        "redesigned-dashboard": {"defaultValue": False, "rules": [
            {"key": "redesigned-dashboard", "variations": [False, True],
             "weights": [0.5, 0.5], "hashAttribute": "id"}]},
        "ai-chatbot": {"defaultValue": False, "rules": [
            {"condition": {"plan": "free", "country": {"$in": ["US", "UK"]}}, "force": True}]},
        "bulk-invoice-api": {"defaultValue": False, "rules": [
            {"condition": {"accountId": {"$in": ENTERPRISE}}, "force": True}]},
        "maintenance-mode": {"defaultValue": False},
    }  # fmt: skip
    # one instance per user, built before timing (the usual per-request pattern)
    native = [
        GrowthBook(
            attributes={
                "id": c["targetingKey"],
                "accountId": c["accountId"],
                "plan": c["plan"],
                "country": c["country"],
            },
            features=features,
        )
        for c in contexts
    ]
    return (lambda k, gb: gb.is_on(k)), native


def flagsmith_check(contexts: list[dict[str, Any]]) -> tuple[Check, list[Any]]:
    from flag_engine.engine import get_evaluation_result

    def feature(n: int, name: str, enabled: bool) -> dict[str, Any]:
        return {"key": str(n), "name": name, "enabled": enabled, "value": None}

    def override(n: int, name: str) -> dict[str, Any]:
        return {**feature(n, name, True), "priority": 1}

    def segment(key: str, n: int, name: str, conditions: list[dict[str, Any]]) -> dict[str, Any]:
        rules = [{"type": "ALL", "conditions": conditions}]
        return {"key": key, "name": key, "rules": rules, "overrides": [override(n, name)]}

    segments = {
        "new-pdf-engine": segment("pdf-5pct", 1, "new-pdf-engine", [
            {"property": "accountId", "operator": "PERCENTAGE_SPLIT", "value": "5"}]),
        "redesigned-dashboard": segment("dash-50pct", 2, "redesigned-dashboard", [
            {"property": "", "operator": "PERCENTAGE_SPLIT", "value": "50"}]),
        "ai-chatbot": segment("free-us-uk", 3, "ai-chatbot", [
            {"property": "plan", "operator": "EQUAL", "value": "free"},
            {"property": "country", "operator": "IN", "value": "US,UK"}]),
        "bulk-invoice-api": segment("enterprise", 4, "bulk-invoice-api", [
            {"property": "accountId", "operator": "IN", "value": ",".join(ENTERPRISE)}]),
    }  # fmt: skip
    # one evaluation context per flag holding only that flag, so a call evaluates one flag
    bases: dict[str, dict[str, Any]] = {}
    for n, key in enumerate(FLAG_KEYS, start=1):
        base: dict[str, Any] = {
            "environment": {"key": "production", "name": "production"},
            "features": {key: feature(n, key, False)},
            "segments": {},
        }
        if key in segments:
            base["segments"] = {segments[key]["key"]: segments[key]}
        bases[key] = base
    native = [
        {
            key: {
                **bases[key],
                "identity": {
                    "identifier": c["targetingKey"],
                    "key": f"production_{c['targetingKey']}",
                    "traits": {
                        "accountId": c["accountId"],
                        "plan": c["plan"],
                        "country": c["country"],
                    },
                },
            }
            for key in FLAG_KEYS
        }
        for c in contexts
    ]
    return (lambda k, c: get_evaluation_result(c[k])["flags"][k]["enabled"]), native


def compile_timings() -> tuple[float, float]:
    """Median ms to validate+compile, and to compile only, a ruleset of 1,000 flags."""
    flags = [f for i in range(200) for f in seed_flags(f"-{i}")]
    doc = document(flags)
    assert validate_ruleset(doc) == []
    full = [_timed_ms(lambda: compile_ruleset(doc)) for _ in range(5)]
    bare = [_timed_ms(lambda: compile_ruleset(doc, validate=False)) for _ in range(5)]
    return statistics.median(full), statistics.median(bare)


def _timed_ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    logging.disable(logging.WARNING)  # peers log about their (disabled) network setup
    started = time.perf_counter()
    contexts = make_contexts()
    print(f"Python {platform.python_version()} on {platform.platform()}; CPU {cpu_model()}")
    print(
        "mmh3 " + version_of("mmh3"),
        "UnleashClient " + version_of("UnleashClient"),
        "growthbook " + version_of("growthbook"),
        "flagsmith-flag-engine " + version_of("flagsmith-flag-engine"),
        sep=", ",
    )
    print(f"{N_CONTEXTS} contexts x {len(FLAG_KEYS)} flags per pass\n")

    results: dict[str, tuple[float, list[int]]] = {}
    for name, (check, native) in {**our_checks(contexts), **floor_checks(contexts)}.items():
        results[name] = time_ns_per_eval(check, native, FLAG_KEYS, REPEATS)
    peers = {
        "UnleashClient is_enabled": unleash_check,
        "growthbook is_on": growthbook_check,
        "flagsmith-flag-engine": flagsmith_check,
    }
    failed_peers: dict[str, str] = {}
    for name, build in peers.items():
        try:
            check, native = build(contexts)
            results[name] = time_ns_per_eval(check, native, FLAG_KEYS, PEER_REPEATS)
        except Exception as exc:  # a peer that cannot run offline is reported, not fatal
            failed_peers[name] = repr(exc)

    ours = results["flagsite is_enabled"][0]
    details = results["flagsite evaluate (details)"][0]
    hash_floor = results["floor: mmh3 + dict lookup"][0]
    header = f"{'implementation':30} {'median ns/eval':>15} {'x ours':>8}   % on per flag"
    print(header)
    print("-" * len(header + " " * 30))
    for name, (ns, counts) in results.items():
        shares = " ".join(f"{100 * n / N_CONTEXTS:5.1f}" for n in counts)
        print(f"{name:30} {ns:15.0f} {ns / ours:8.2f}   {shares}")
    for name, why in failed_peers.items():
        print(f"{name:30} could not run offline: {why}")
    print("(% on columns: " + ", ".join(FLAG_KEYS) + ")\n")

    full_ms, bare_ms = compile_timings()
    peer_times = {n: results[n][0] for n in peers if n in results}
    fastest_name = min(peer_times, key=lambda n: peer_times[n]) if peer_times else None
    fastest = peer_times[fastest_name] if fastest_name else float("nan")
    print(f"compile 1,000 flags: {full_ms:.1f} ms with validation, {bare_ms:.1f} ms without")
    print(f"is_enabled / mmh3+dict floor: {ours / hash_floor:.2f}x")
    if fastest_name:
        print(f"fastest peer ({fastest_name}) / is_enabled: {fastest / ours:.1f}x\n")

    targets = [
        ("is_enabled median <= 1.0 us", ours <= 1_000),
        ("evaluate (details) median <= 1.5 us", details <= 1_500),
        ("is_enabled within 4x of the mmh3+dict floor", ours <= 4 * hash_floor),
        (
            "is_enabled >= 5x faster than the fastest peer",
            bool(fastest_name) and fastest >= 5 * ours,
        ),
        (
            "  stretch: >= 10x faster than the fastest peer",
            bool(fastest_name) and fastest >= 10 * ours,
        ),
        ("compile 1,000 flags (with validation) < 50 ms", full_ms < 50),
    ]
    for label, ok in targets:
        print(f"{'PASS' if ok else 'FAIL'}  {label}")

    # The SDK's own cost per check, through FlagsiteClient with exposure recording on.
    print("\nFlagsiteClient.is_enabled with exposures on, against the bare engine (same run):")
    from bench import sdk_overhead

    sdk_overhead.main()
    print(f"\nbenchmark took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
