"""Rewrites JS/TS/TSX code as if a flag always served one variant, with polyglot-piranha.

Piranha ships no cleanup rules for TypeScript, so the rule graph is ours: a seed rule turns
each check of the flag (Node SDK, React hooks, OpenFeature) into the served literal; cleanup
rules, chained to the changed node's parents, fold ``!``, ``&&``, ``||``, ``===`` between
literals and ternaries, and keep the live branch of ``if`` (as a block: ``let``/``const`` in
it then cannot clash with names around it). A second pass removes import specifiers the
rewrite left unused.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Literal

from polyglot_piranha import (
    OutgoingEdges,
    PiranhaArguments,
    Rule,
    RuleGraph,
    execute_piranha,
)

from hygiene.remover import Rewrite, Served

# Piranha logs every file it touches at INFO; a diff says more.
logging.getLogger("polyglot_piranha").setLevel(logging.WARNING)

BOOLEAN_CALLS = ("isEnabled", "useFeatureFlag", "getBooleanValue", "useBooleanFlagValue")
VARIANT_CALLS = ("variant", "getVariant", "useVariant")
VALUE_CALLS = (
    "value", "getValue", "getStringValue", "getNumberValue", "getObjectValue",
    "useStringFlagValue", "useNumberFlagValue", "useObjectFlagValue",
)  # fmt: skip
TRUE = "[(true) (parenthesized_expression (true))]"
FALSE = "[(false) (parenthesized_expression (false))]"


def _seed(name: str, calls: tuple[str, ...], key: str, replacement: str) -> Rule:
    names = "|".join(calls)
    query = f"""(
      (call_expression
        function: [(identifier) @fn (member_expression property: (property_identifier) @fn)]
        arguments: (arguments . (string (string_fragment) @key)))
      @call
      (#match? @fn "^({names})$")
      (#eq? @key "{key}"))"""
    return Rule(name=name, query=query, replace_node="call", replace=replacement, is_seed_rule=True)


def _cleanup(name: str, query: str, node: str, replacement: str) -> Rule:
    return Rule(
        name=name, query=f"({query})", replace_node=node, replace=replacement, is_seed_rule=False
    )


def _cleanups() -> list[Rule]:
    # Fresh rules per run: piranha's rule objects keep state between runs.
    return [
        _cleanup("not_true", f'(unary_expression operator: "!" argument: {TRUE}) @e', "e", "false"),
        _cleanup(
            "not_false", f'(unary_expression operator: "!" argument: {FALSE}) @e', "e", "true"
        ),
        _cleanup(
            "true_and",
            f'(binary_expression left: {TRUE} operator: "&&" right: (_) @r) @e',
            "e",
            "@r",
        ),
        _cleanup(
            "false_and",
            f'(binary_expression left: {FALSE} operator: "&&" right: (_)) @e',
            "e",
            "false",
        ),
        _cleanup(
            "true_or", f'(binary_expression left: {TRUE} operator: "||" right: (_)) @e', "e", "true"
        ),
        _cleanup(
            "false_or",
            f'(binary_expression left: {FALSE} operator: "||" right: (_) @r) @e',
            "e",
            "@r",
        ),
        _cleanup(
            "and_true",
            f'(binary_expression left: (_) @l operator: "&&" right: {TRUE}) @e',
            "e",
            "@l",
        ),
        _cleanup(
            "or_false",
            f'(binary_expression left: (_) @l operator: "||" right: {FALSE}) @e',
            "e",
            "@l",
        ),
        _cleanup(
            "ternary_true",
            f"(ternary_expression condition: {TRUE} consequence: (_) @c alternative: (_)) @e",
            "e",
            "@c",
        ),
        _cleanup(
            "ternary_false",
            f"(ternary_expression condition: {FALSE} consequence: (_) alternative: (_) @a) @e",
            "e",
            "@a",
        ),
        _cleanup(
            "if_true",
            f"(if_statement condition: (parenthesized_expression {TRUE}) consequence: (_) @c) @e",
            "e",
            "@c",
        ),
        _cleanup(
            "if_false_else",
            f"(if_statement condition: (parenthesized_expression {FALSE}) consequence: (_)"
            " alternative: (else_clause (_) @a)) @e",
            "e",
            "@a",
        ),
        _cleanup(
            "if_false",
            f"(if_statement condition: (parenthesized_expression {FALSE}) consequence: (_)"
            " !alternative) @e",
            "e",
            "",
        ),
    ]


def _literal_comparisons(variant: str) -> list[Rule]:
    """``"beta" === "beta"`` and the like, once a variant check became its literal."""

    def mine(side: str) -> str:
        return f'(string (string_fragment) @{side} (#eq? @{side} "{variant}"))'

    def other(side: str) -> str:
        return f'(string (string_fragment) @{side} (#not-eq? @{side} "{variant}"))'

    rules: list[Rule] = []
    for op, equal in (("===", True), ("==", True), ("!==", False), ("!=", False)):
        for left, right, same in ((mine, mine, True), (mine, other, False), (other, mine, False)):
            outcome = "true" if same == equal else "false"
            query = f'(binary_expression left: {left("l")} operator: "{op}" right: {right("r")}) @e'
            rules.append(_cleanup(f"compare_{len(rules)}", query, "e", outcome))
    return rules


def _graph(key: str, served: Served) -> RuleGraph:
    rules = [
        _seed("seed_boolean", BOOLEAN_CALLS, key, "true" if served.enabled else "false"),
        _seed("seed_variant", VARIANT_CALLS, key, json.dumps(served.variant)),
        _seed("seed_value", VALUE_CALLS, key, json.dumps(served.value)),
    ]
    cleanups = _cleanups() + _literal_comparisons(served.variant)
    names = [r.name for r in cleanups]
    edges = [OutgoingEdges(seed.name, to=names, scope="Parent") for seed in rules] + [
        OutgoingEdges(name, to=names, scope="Parent") for name in names
    ]
    return RuleGraph(rules=rules + cleanups, edges=edges)


Language = Literal["tsx", "typescript"]


def _language(suffix: str) -> Language:
    return "tsx" if suffix in (".tsx", ".jsx", ".js", ".mjs", ".cjs") else "typescript"


def _run(code: str, graph: RuleGraph, language: Language) -> tuple[str, int]:
    args = PiranhaArguments(code_snippet=code, language=language, rule_graph=graph)
    summaries: list[Any] = execute_piranha(args)
    if not summaries:
        return code, 0
    rewrites = sum(len(s.rewrites) for s in summaries)
    return str(summaries[0].content), rewrites


IMPORTED = re.compile(
    r"^\s*(?:import\s+(?P<es>[^;]*?)\s+from\s|(?:const|let|var)\s+(?P<req>[^=]+?)\s*=\s*require\()",
    re.MULTILINE,
)


def _imported_names(code: str) -> set[str]:
    """Local names bound by ES imports and by ``const x = require(...)`` declarations."""
    names: set[str] = set()
    for match in IMPORTED.finditer(code):
        clause = match["es"] or match["req"] or ""
        for part in re.split(r"[{},]", clause):
            words = part.replace("* as", "").split()
            if words and words[-1] not in ("type", "as"):
                names.add(words[-1])
    return names


def _drop_rules(name: str) -> list[Rule]:
    q = f'(#eq? @n "{name}")'
    queries = {
        # The only name an import statement brings in: the whole statement goes.
        "import": f"(import_statement (import_clause (named_imports . (import_specifier "
        f"name: (identifier) @n) .))) @e {q}",
        "default": f"(import_statement (import_clause . (identifier) @n .)) @e {q}",
        # One name among several.
        "specifier": f"(import_specifier name: (identifier) @n) @e {q}",
        "require": "(lexical_declaration (variable_declarator name: [(identifier) @n "
        "(object_pattern . (shorthand_property_identifier_pattern) @n .)] value: "
        f'(call_expression function: (identifier) @r (#eq? @r "require")))) @e {q}',
    }
    return [
        Rule(
            name=f"drop_{kind}_{name}",
            query=f"({query})",
            replace_node="e",
            replace="",
            is_seed_rule=True,
        )
        for kind, query in queries.items()
    ]


def _unused_imports(before: str, after: str, language: Language) -> str:
    """Drops imports that the rewrite left unused (those unused before are left alone)."""
    rules = []
    for name in sorted(_imported_names(before)):
        used = re.compile(rf"(?<![\w$]){re.escape(name)}(?![\w$])")
        if len(used.findall(before)) > 1 and len(used.findall(after)) == 1:
            rules += _drop_rules(name)
    if not rules:
        return after
    cleaned, _ = _run(after, RuleGraph(rules=rules, edges=[]), language)
    # A removed specifier leaves ", ," or "{ ," behind in a multi-name import.
    return re.sub(r"^import [^;]*;?$", _tidy_import, cleaned, flags=re.MULTILINE)


def _tidy_import(match: re.Match[str]) -> str:
    line = match[0]
    for gap, tidy in ((r",\s*\}", " }"), (r",\s*,", ","), (r"\{\s*,?\s+", "{ ")):
        line = re.sub(gap, tidy, line)
    return line


def rewrite_script(source: str, key: str, served: Served, path: str, suffix: str) -> Rewrite:
    language = _language(suffix)
    after, count = _run(source, _graph(key, served), language)
    if not count:
        return Rewrite(path, source, source, 0)
    after = _unused_imports(source, after, language)
    if not source.startswith("\n"):
        after = after.lstrip("\n")  # a removed first import leaves its line break
    return Rewrite(path, source, after, count)
