"""The operand grammar holds across engines: a property test through the cross-language harness.

Hypothesis builds rule documents whose dates, versions and numbers sit at the grammar's edges
(RFC 3339 and the `fromisoformat` forms beside it, Unicode digits, leading zeros, 20-digit
version parts, integers around 2^53 and 2^64, any double) and contexts made of the same values.
Each example is a batch of documents sent to the Node engine in one call (a Node start costs
about as much as the whole batch). For every document:

- the flags the Node engine sets aside are exactly the flags the server's validator refuses
  (plus those using a refused segment), so any document the validator accepts compiles whole in
  Node, and an operand the validator refuses never compiles there;
- every flag gives the same answer in both engines for every context, whether Node reads the
  JSON with JSON.parse (as the SDK does) or keeps big integers exact (as Python does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flagsite_sdk.engine import compile_ruleset, validate_ruleset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.js.conftest import run_node

# Digits that Python's \d (and int()) read but RFC 3339 and SemVer do not.
OTHER_DIGITS = ["\u0660", "\u0661", "\u0662", "\u06f5", "\u0967", "\uff11", "\U0001d7d9"]
EDGE_INTEGERS = [2**53 - 1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**20]
NUMBER_OPERATORS = ["lt", "lte", "gt", "gte"]
GRAMMAR_OPERATORS = ["before", "after", "semver_eq", "semver_lt", "semver_gt", *NUMBER_OPERATORS,
                     "equals", "not_equals", "in", "not_in"]  # fmt: skip


@st.composite
def foreign_digit(draw: st.DrawFn, text: str) -> str:
    """`text` with one ASCII digit replaced by a digit of another script, if it has one."""
    places = [i for i, c in enumerate(text) if c.isascii() and c.isdigit()]
    if not places:
        return text
    i = draw(st.sampled_from(places))
    return text[:i] + draw(st.sampled_from(OTHER_DIGITS)) + text[i + 1 :]


@st.composite
def dates(draw: st.DrawFn) -> str:
    year = draw(st.integers(0, 9999))
    month = draw(st.integers(0, 13))
    day = draw(st.integers(0, 32))
    form = draw(st.sampled_from(["date", "date-time", "date-time", "basic", "week", "ordinal"]))
    if form == "basic":
        text = f"{year:04d}{month:02d}{day:02d}"
    elif form == "week":
        text = f"{year:04d}-W{draw(st.integers(0, 54)):02d}-{draw(st.integers(0, 8))}"
    elif form == "ordinal":
        text = f"{year:04d}-{draw(st.integers(0, 367)):03d}"
    else:
        text = f"{year:04d}-{month:02d}-{day:02d}"
    if form == "date-time":
        hour, minute, second = draw(st.tuples(*[st.integers(0, 61)] * 3))
        sep = draw(st.sampled_from(["T", "T", "t", " "]))
        clocks = [f"{hour:02d}:{minute:02d}:{second:02d}", f"{hour:02d}:{minute:02d}",
                  f"{hour:02d}{minute:02d}", f"{hour:02d}"]  # fmt: skip
        clock = draw(st.sampled_from(clocks))
        if draw(st.booleans()):
            fraction = draw(st.from_regex(r"[0-9]{0,12}", fullmatch=True))
            clock += draw(st.sampled_from([".", ","])) + fraction
        zone_hour, zone_minute = draw(st.integers(0, 25)), draw(st.integers(0, 60))
        sign = draw(st.sampled_from(["+", "-"]))
        zones = ["Z", "z", "", f"{sign}{zone_hour:02d}:{zone_minute:02d}",
                 f"{sign}{zone_hour:02d}{zone_minute:02d}", f"{sign}{zone_hour:02d}"]  # fmt: skip
        zone = draw(st.sampled_from(zones))
        text = f"{text}{sep}{clock}{zone}"
    return draw(_mutated(text))


@st.composite
def versions(draw: st.DrawFn) -> str:
    long_numbers = ["9" * 16, "9" * 17, "9" * 18, "1" + "0" * 19, "9" * 40]
    number = st.one_of(
        st.integers(0, 30).map(str), st.sampled_from(["00", "01", "007", *long_numbers])
    )
    identifier = st.one_of(number, st.from_regex(r"[0-9A-Za-z-]{1,5}", fullmatch=True),
                           st.sampled_from(["rc", "0a", "", "a_b", "x.y"]))  # fmt: skip
    parts = draw(st.lists(number, min_size=2, max_size=4))
    if draw(st.integers(0, 4)):  # mostly three parts, as the grammar wants
        parts = [*parts, "0", "0", "0"][:3]
    text = draw(st.sampled_from(["", "", "v", "V", "="])) + ".".join(parts)
    if draw(st.booleans()):
        text += "-" + ".".join(draw(st.lists(identifier, min_size=1, max_size=3)))
    if draw(st.booleans()):
        text += "+" + ".".join(draw(st.lists(identifier, min_size=1, max_size=2)))
    return draw(_mutated(text))


def _mutated(text: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(text),
        st.just(text),
        st.just(text),
        foreign_digit(text),
        st.sampled_from([text + "\n", " " + text, text.upper(), text.replace(":", "")]),
    )


numbers = st.one_of(
    st.integers(-100, 100),
    st.sampled_from(EDGE_INTEGERS).flatmap(lambda n: st.sampled_from([n, -n])),
    st.integers(2**53 - 3, 2**53 + 3).flatmap(lambda n: st.sampled_from([n, -n])),
    st.sampled_from([9007199254740991.0, 9007199254740992.0, 1e16, 1e20, 0.5, -0.0, 12.0]),
    st.floats(allow_nan=False, allow_infinity=False),
)
# Epoch milliseconds: any number, and integers near the instants the dates above name.
instants = st.one_of(numbers, st.integers(-62_167_219_200_000, 253_402_300_799_999))
scalars = st.one_of(numbers, versions(), dates(), st.booleans())


@st.composite
def conditions(draw: st.DrawFn, segments: list[str]) -> dict[str, Any]:
    choices = [*GRAMMAR_OPERATORS, "within_radius"] + (["in_segment"] if segments else [])
    op = draw(st.sampled_from(choices))
    if op == "in_segment":
        return {"operator": op, "values": [draw(st.sampled_from(segments))]}
    attribute = draw(st.sampled_from(["d", "v", "n", "targetingKey"]))
    if op in ("before", "after"):
        values: list[Any] = [draw(st.one_of(dates(), dates(), numbers))]
    elif op.startswith("semver_"):
        values = [draw(versions())]
    elif op in NUMBER_OPERATORS:
        values = [draw(numbers)]
    elif op in ("equals", "not_equals"):
        values = [draw(scalars)]
    else:
        values = draw(st.lists(scalars, max_size=3))
    condition: dict[str, Any] = {"attribute": attribute, "operator": op, "values": values}
    if draw(st.integers(0, 4)) == 0:
        condition["negate"] = True
    return condition


def _flag(key: str, rules: list[dict[str, Any]], rollout: bool) -> dict[str, Any]:
    default: dict[str, Any] = {"variant": "off"}
    if rollout:
        split = [{"variant": "on", "weight": 50_000}, {"variant": "off", "weight": 50_000}]
        default = {"rollout": {"fallbackVariant": "off", "variants": split}}
    return {
        "key": key,
        "version": 1,
        "valueType": "boolean",
        "variants": {"on": True, "off": False},
        "enabled": True,
        "offVariant": "off",
        "salt": key,
        "rules": rules,
        "defaultServe": default,
    }


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    segments: dict[str, Any] = {}
    if draw(st.booleans()):
        rule = {"id": "s1", "conditions": [draw(conditions([]))]}
        segments["edge"] = {"key": "edge", "version": 1, "rules": [rule]}
    flags: dict[str, Any] = {}
    for i in range(draw(st.integers(1, 5))):
        rules = []
        for j in range(draw(st.integers(0, 2))):
            found = draw(st.lists(conditions(list(segments)), max_size=2))
            rules.append({"id": f"r{j}", "conditions": found, "serve": {"variant": "on"}})
        flags[f"f{i}"] = _flag(f"f{i}", rules, draw(st.booleans()))
    return {"schemaVersion": 1, "environment": "test", "version": 1, "flags": flags,
            "segments": segments}  # fmt: skip


contexts = st.fixed_dictionaries(
    {},
    optional={
        "d": st.one_of(dates(), instants),
        "v": st.one_of(versions(), numbers),
        "n": st.one_of(numbers, dates()),
        "targetingKey": st.one_of(numbers, st.sampled_from(["u1", "u2", "9007199254740991"])),
    },
)


def _refused(doc: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Flags the validator refuses (plus those using a segment it refuses), and segments."""
    flags: set[str] = set()
    segments: set[str] = set()
    for error in validate_ruleset(doc):
        kind, key = error.path.split(".")[:2]
        (flags if kind == "flags" else segments).add(key)
    for key, flag in doc["flags"].items():
        for rule in flag["rules"]:
            for cond in rule["conditions"]:
                if cond["operator"] == "in_segment" and set(cond["values"]) & segments:
                    flags.add(key)
    return flags, segments


def _python(doc: dict[str, Any], cases: list[tuple[str, dict[str, Any]]]) -> list[list[Any]]:
    compiled = compile_ruleset(doc, lenient=True)
    out = []
    for flag, ctx in cases:
        d = compiled.evaluate(flag, ctx)
        code = str(d.error_code) if d.error_code is not None else None
        out.append([d.variant, str(d.reason), d.rule_id, code, bool(d.notes), d.value])
    return out


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    docs=st.lists(documents(), min_size=10, max_size=25),
    ctxs=st.lists(contexts, min_size=5, max_size=15),
    reader=st.sampled_from(["lossless", "json"]),
)
def test_what_the_validator_accepts_node_compiles_and_both_answer_alike(
    js_sdk: Path, docs: list[dict[str, Any]], ctxs: list[dict[str, Any]], reader: str
) -> None:
    batches = [
        {"ruleset": doc, "cases": [(flag, ctx) for flag in doc["flags"] for ctx in ctxs]}
        for doc in docs
    ]
    # json.dumps writes each number as Python holds it; the reader decides what Node holds
    node = run_node(
        js_sdk / "tools" / "evaluate-batch.mjs",
        json.loads(json.dumps({"batches": batches})),
        cwd=js_sdk,
        args=[f"--reader={reader}"],
    )

    for doc, batch, broken, broken_segments, refused, js_results in zip(
        docs, batches, node["broken"], node["brokenSegments"], node["refused"], node["results"],
        strict=True,
    ):  # fmt: skip
        refused_flags, refused_segments = _refused(doc)
        assert refused is None
        assert set(broken) == refused_flags, (broken, validate_ruleset(doc))
        assert set(broken_segments) == refused_segments, (broken_segments, validate_ruleset(doc))
        if validate_ruleset(doc) == []:
            # accepted at save time: the Node engine compiles the whole document
            assert broken == []
            assert broken_segments == []
        for case, py, js in zip(batch["cases"], _python(doc, batch["cases"]), js_results,
                                strict=True):  # fmt: skip
            assert js == py, f"{case[0]} of {doc['flags'][case[0]]} with {case[1]!r}"


def test_the_issue_operands_are_refused_by_the_validator_and_by_node(js_sdk: Path) -> None:
    operands = [("before", "20250101"), ("before", "2025-W01-1"), ("after", "2025-01-01T1000"),
                ("semver_gt", "1\u0661.0.0"), ("gt", 2**53), ("in", 2**64)]  # fmt: skip
    flags = {}
    for i, (op, value) in enumerate(operands):
        condition = {"attribute": "a", "operator": op, "values": [value]}
        rules = [{"id": "r", "conditions": [condition], "serve": {"variant": "on"}}]
        flags[f"f{i}"] = _flag(f"f{i}", rules, rollout=False)
    flags["maintenance-mode"] = _flag("maintenance-mode", [], rollout=False)
    flags["maintenance-mode"]["defaultServe"] = {"variant": "on"}
    doc = {"schemaVersion": 1, "environment": "test", "version": 1, "flags": flags, "segments": {}}
    paths = {e.path for e in validate_ruleset(doc)}
    assert paths == {f"flags.f{i}.rules[0].conditions[0].values[0]" for i in range(len(operands))}

    for reader in ("lossless", "json"):
        node = run_node(
            js_sdk / "tools" / "evaluate-batch.mjs",
            {"batches": [{"ruleset": doc, "cases": [("maintenance-mode", {}), ("f0", {})]}]},
            cwd=js_sdk,
            args=[f"--reader={reader}"],
        )
        assert node["broken"] == [sorted(f"f{i}" for i in range(len(operands)))]
        on, broken = node["results"][0]
        assert on[:2] == ["on", "STATIC"]  # the kill switch beside them applies
        assert broken[1:4] == ["ERROR", None, "PARSE_ERROR"]
