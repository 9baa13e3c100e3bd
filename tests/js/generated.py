"""Random rulesets built from the schema's vocabulary, and random contexts, for comparing engines.

Seeded `random.Random`, so a failure reproduces. Every operator, serve kind, segment form and
prerequisite appears; context values are often of the wrong type on purpose, or just outside the
operand grammar (docs/ruleset.md): dates `fromisoformat` reads but RFC 3339 does not, Unicode
digits, integers around 2^53. No NaN, which JSON cannot carry. Whole floats (JSON `10.0`, the
integer 10 in JavaScript) are fine: the engines treat 10 and 10.0 alike.
"""

from __future__ import annotations

import random
from typing import Any

from flagsite_sdk.engine import OPERATORS, validate_ruleset

ATTRIBUTES = ["targetingKey", "userId", "accountId", "plan", "country", "email", "age", "seats",
              "version", "signup", "tags", "beta", "name"]  # fmt: skip
PLANS = ["free", "pro", "enterprise", "FREE", "Pro"]
COUNTRIES = ["US", "UK", "DE", "FR", "us", "JP"]
# letters whose case folding differs between naive lowercasing and Python's casefold
# and lone surrogates, which both engines read as U+FFFD
ODD_LETTERS = [*"ßẞİ\u0131Σς\u03c3éÉ東京😀ﬁKǅ\u13a0ꭰ\ufffd", "\ud800", "\udfff"]
DOMAINS = ["example.com", "acme.com", "ACME.com", "sub.acme.com", "mail.test"]
VERSION_OPERANDS = ["1.0.0", "1.2.3", "v1.2.3", "2.0.0-rc.1", "2.0.0-rc.10", "2.0.0-alpha", "2.0.0",
                    "1.2.3+build.5", "10.0.0", "0.9.99", "99999999999999999999.0.0",
                    "1.0.0-rc.99999999999999999998"]  # fmt: skip
# versions outside the grammar: Python's \d read the Arabic-Indic one, leading zeros, two parts
VERSIONS = [*VERSION_OPERANDS, "1.2", "banana", "1\u0661.0.0", "01.0.0", "1.0.0-01", "V1.2.3",
            "99999999999999999999.0.1", "1.0.0-rc.99999999999999999999"]  # fmt: skip
DATE_OPERANDS = ["2024-01-01", "2024-06-30T12:00:00Z", "2025-01-01T00:00:00+02:00", "2023-02-28",
                 "2025-03-01T10:00:00.123456Z", "2024-12-31T23:59:59-05:30", "2024-02-29",
                 "2024-12-31t23:59:59z"]  # fmt: skip
# dates outside the grammar, most of which datetime.fromisoformat reads
DATES = [*DATE_OPERANDS, "2024-12-31T23:59:59", "2024-02-29T08:30", "20250101", "2025-W01-1",
         "2025-01-01T1000", "2024-12-31 23:59:59Z", "2023-02-29", "\u0662\u0660\u0662\u0664-01-01",
         "2024-12-31T23:59:60Z", "not a date"]  # fmt: skip
# integers at the edges of the number range, 2^53 - 1, and of 64 bits
EDGE_INTEGERS = [2**53 - 1, 2**53, 2**53 + 1, -(2**53 - 1), -(2**53), 2**63, 2**64, -(2**63) - 1]
PATTERNS = ["^acct-1", "[0-9]{3}$", "example\\.(com|org)$", "^[a-f]", "ß", "^user-[0-9]+$", "Σ"]


def _text(rng: random.Random) -> str:
    alphabet = "abcdefxyzABC0123-_.@ "
    n = rng.randint(0, 8)
    return "".join(rng.choice(ODD_LETTERS) if rng.random() < 0.15 else rng.choice(alphabet)
                   for _ in range(n))  # fmt: skip


def _fraction(rng: random.Random) -> float:
    value = round(rng.uniform(-50, 150), 3)
    return value if value != int(value) else value + 0.5


def _scalar(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.45:
        return rng.choice(PLANS + COUNTRIES + [_text(rng)])
    if roll < 0.7:
        return rng.randint(-5, 120)
    if roll < 0.85:
        return _fraction(rng)
    return rng.random() < 0.5


def context(rng: random.Random) -> dict[str, Any]:
    ctx: dict[str, Any] = {}
    for attr in ATTRIBUTES:
        if rng.random() < 0.35:
            continue
        ctx[attr] = _attribute_value(rng, attr)
    return ctx


def _attribute_value(rng: random.Random, attr: str) -> Any:
    if rng.random() < 0.003:  # at and over the length bound: 4,096 code points (😀 is one)
        letter = "😀" if rng.random() < 0.2 else "x"
        return letter * rng.choice([4095, 4096]) + rng.choice(["", "y"])
    if rng.random() < 0.08:  # the wrong type, or null
        return rng.choice([None, 7, _fraction(rng), True, ["a", 1], {"k": 1}, "", _text(rng),
                           2**60 + rng.randint(0, 9), rng.choice(EDGE_INTEGERS), 12.0])  # fmt: skip
    if attr in ("targetingKey", "userId"):
        user = f"user-{rng.randint(0, 5000)}"
        return rng.choice([user, _text(rng) or "u", rng.randint(0, 10**6),
                           float(rng.randint(0, 10**6)), rng.choice(EDGE_INTEGERS)])  # fmt: skip
    if attr == "accountId":
        return f"acct-{rng.randint(1000, 1100)}"
    if attr == "plan":
        return rng.choice(PLANS)
    if attr == "country":
        return rng.choice(COUNTRIES)
    if attr == "email":
        return f"{_text(rng) or 'ann'}@{rng.choice(DOMAINS)}"
    if attr in ("age", "seats"):
        return rng.choice([rng.randint(0, 100), _fraction(rng), 2**53 + rng.randint(-2, 2),
                           -(2**53) + rng.randint(-2, 2), float(rng.randint(0, 100))])  # fmt: skip
    if attr == "version":
        return rng.choice(VERSIONS)
    if attr == "signup":
        return rng.choice([*DATES, rng.randint(1_600_000_000_000, 1_800_000_000_000),
                           rng.choice(EDGE_INTEGERS)])  # fmt: skip
    if attr == "tags":
        return [rng.choice(["beta", "Beta", "vip", "ß", "x"]) for _ in range(rng.randint(0, 3))]
    if attr == "beta":
        return rng.random() < 0.5
    return _text(rng)


def _condition(rng: random.Random, segments: list[str]) -> dict[str, Any]:
    op = rng.choice([o for o in OPERATORS if segments or "segment" not in o])
    cond: dict[str, Any] = {"operator": op}
    if op in ("in_segment", "not_in_segment"):
        cond["values"] = rng.sample(segments, rng.randint(1, len(segments)))
    else:
        cond["attribute"] = rng.choice(ATTRIBUTES)
        cond["values"] = _operands(rng, op)
    if rng.random() < 0.2:
        cond["negate"] = True
    if rng.random() < 0.3:
        cond["caseInsensitive"] = True
    return cond


def _operands(rng: random.Random, op: str) -> list[Any]:
    if op in ("exists", "not_exists"):
        return []
    if op in ("equals", "not_equals"):
        return [_scalar(rng)]
    if op in ("in", "not_in"):
        return [_scalar(rng) for _ in range(rng.randint(0, 4))]
    if op in ("contains", "starts_with", "ends_with"):
        return [_text(rng) for _ in range(rng.randint(1, 3))]
    if op == "matches":
        return rng.sample(PATTERNS, rng.randint(1, 2))
    if op in ("lt", "lte", "gt", "gte"):
        return [rng.choice([rng.randint(0, 100), _fraction(rng), 2**53 - 1, -(2**53 - 1)])]
    if op.startswith("semver_"):
        return [rng.choice(VERSION_OPERANDS)]
    if op in ("before", "after"):
        return [rng.choice(DATE_OPERANDS)]
    if op == "email_domain_in":
        return [rng.choice(["@", ""]) + rng.choice(DOMAINS) for _ in range(rng.randint(1, 2))]
    raise AssertionError(op)


def _serve(rng: random.Random, variants: list[str]) -> dict[str, Any]:
    if rng.random() < 0.5:
        return {"variant": rng.choice(variants)}
    chosen = rng.sample(variants, rng.randint(1, len(variants)))
    cuts = sorted(rng.randint(0, 100_000) for _ in range(len(chosen) - 1))
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, 100_000], strict=True)]
    rollout: dict[str, Any] = {
        "variants": [{"variant": v, "weight": w} for v, w in zip(chosen, weights, strict=True)]
    }
    if rng.random() < 0.6:
        rollout["bucketBy"] = rng.choice(["targetingKey", "accountId", "userId", "email", "age"])
    if rng.random() < 0.6:
        rollout["fallbackVariant"] = rng.choice(variants)
    return {"rollout": rollout}


def _variants(rng: random.Random, value_type: str) -> dict[str, Any]:
    names = ["on", "off", "a", "b", "c"][: rng.randint(2, 5)]
    if value_type == "boolean":
        return {"on": True, "off": False}
    if value_type == "string":
        return {n: f"value-{n}" for n in names}
    if value_type == "number":
        return {n: rng.choice([i, _fraction(rng)]) for i, n in enumerate(names)}
    return {n: {"n": i, "list": [n]} for i, n in enumerate(names)}


def ruleset(rng: random.Random, version: int) -> dict[str, Any]:
    segments: dict[str, Any] = {}
    for i in range(rng.randint(0, 3)):
        key = f"seg-{i}"
        seg: dict[str, Any] = {"key": key, "version": 1}
        if rng.random() < 0.5:
            seg["keyAttribute"] = rng.choice(["targetingKey", "accountId", "email"])
        seg["included"] = [f"acct-{rng.randint(1000, 1100)}" for _ in range(rng.randint(0, 5))] + [
            f"user-{rng.randint(0, 5000)}" for _ in range(rng.randint(0, 5))
        ]
        seg["excluded"] = [f"acct-{rng.randint(1000, 1100)}" for _ in range(rng.randint(0, 3))]
        seg["rules"] = [
            {"id": f"s{j}", "conditions": [_condition(rng, []) for _ in range(rng.randint(0, 2))]}
            for j in range(rng.randint(0, 2))
        ]
        segments[key] = seg
    flags: dict[str, Any] = {}
    for i in range(rng.randint(3, 10)):
        key = f"flag-{i}"
        value_type = rng.choice(["boolean", "string", "number", "json"])
        variants = _variants(rng, value_type)
        names = list(variants)
        flag: dict[str, Any] = {
            "key": key, "version": rng.randint(1, 9), "valueType": value_type,
            "variants": variants, "enabled": rng.random() < 0.9, "offVariant": rng.choice(names),
            "salt": rng.choice([key, f"{key}-reshuffled", "a.b"]),
            "clientVisible": rng.random() < 0.5,
            "rules": [
                {"id": f"r{j}", "conditions": [_condition(rng, list(segments))
                                               for _ in range(rng.randint(0, 3))],
                 "serve": _serve(rng, names)}
                for j in range(rng.randint(0, 4))
            ],
            "defaultServe": _serve(rng, names),
        }  # fmt: skip
        earlier = list(flags)
        if earlier and rng.random() < 0.4:
            target = rng.choice(earlier)
            wanted = rng.sample(list(flags[target]["variants"]), 1)
            flag["prerequisites"] = [{"flag": target, "variants": wanted}]
        flags[key] = flag
    doc = {"schemaVersion": 1, "project": "generated", "environment": "test", "version": version,
           "flags": flags, "segments": segments}  # fmt: skip
    errors = validate_ruleset(doc)
    assert not errors, f"the generator made an invalid ruleset: {errors[:3]}"
    return doc
