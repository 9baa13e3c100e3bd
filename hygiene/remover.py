"""Rewrites Python code as if a flag always served one variant, with LibCST.

Each check of the flag (SDK call, OpenFeature call, Django decorator, or an alias constant
passed to one) becomes the served value; constant conditions are then folded: ``if True:``
keeps its body, ``if False:`` its ``else``, ``x if True else y`` becomes ``x``, ``not``,
``and``/``or`` and ``==``/``!=`` between literals are evaluated. Imports that the rewrite left
unused are removed (imports that were unused before are left alone). Imports no Django.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import libcst as cst
import libcst.matchers as m
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import RemoveImportsVisitor
from libcst.metadata import ScopeProvider

BOOLEAN_CALLS = {
    "is_enabled", "get_boolean", "get_boolean_value", "flag_enabled",
}  # fmt: skip
VARIANT_CALLS = {"variant", "flag_variant"}
VALUE_CALLS = {
    "value", "get_string", "get_number", "get_json", "get_string_value", "get_integer_value",
    "get_float_value", "get_object_value", "flag_value",
}  # fmt: skip
GATE_DECORATORS = {"flag_required", "kill_switch"}


@dataclass(frozen=True)
class Served:
    """What the flag serves from now on: the variant's name and its value."""

    variant: str
    value: Any

    @property
    def enabled(self) -> bool:
        return self.value is True or (self.value is not False and self.variant != "off")


def _literal(value: Any) -> cst.BaseExpression:
    return cst.parse_expression(repr(value))


def _name_of(func: cst.BaseExpression) -> str | None:
    if isinstance(func, cst.Attribute):
        return func.attr.value
    if isinstance(func, cst.Name):
        return func.value
    return None


class _ReplaceChecks(cst.CSTTransformer):
    def __init__(self, key: str, served: Served, aliases: set[str]) -> None:
        self.key = key
        self.served = served
        self.aliases = aliases
        self.changed = 0

    def _is_key(self, node: cst.BaseExpression) -> bool:
        if isinstance(node, cst.SimpleString):
            return node.evaluated_value == self.key
        name = _name_of(node)
        return name is not None and name in self.aliases

    def _checks_flag(self, call: cst.Call) -> str | None:
        name = _name_of(call.func)
        if name is None or not call.args or not self._is_key(call.args[0].value):
            return None
        return name

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        name = self._checks_flag(updated)
        if name in BOOLEAN_CALLS:
            self.changed += 1
            return cst.Name("True" if self.served.enabled else "False")
        if name in VARIANT_CALLS:
            self.changed += 1
            return _literal(self.served.variant)
        if name in VALUE_CALLS:
            self.changed += 1
            return _literal(self.served.value)
        return updated

    def leave_Decorator(
        self, original: cst.Decorator, updated: cst.Decorator
    ) -> cst.Decorator | cst.RemovalSentinel:
        call = updated.decorator
        gate = isinstance(call, cst.Call) and self._checks_flag(call) in GATE_DECORATORS
        if gate and self.served.enabled:  # the gate now always lets the view through
            self.changed += 1
            return cst.RemoveFromParent()
        return updated


def _truth(node: cst.BaseExpression) -> bool | None:
    """The truth value of a literal expression, or None when it is not a literal."""
    if m.matches(node, m.Name("True")):
        return True
    if m.matches(node, m.Name("False") | m.Name("None")):
        return False
    if isinstance(node, cst.SimpleString):
        return bool(node.evaluated_value)
    if isinstance(node, cst.Integer | cst.Float):
        return bool(node.evaluated_value)
    return None


def _constant(node: cst.BaseExpression) -> tuple[bool, Any]:
    if isinstance(node, cst.SimpleString):
        return True, node.evaluated_value
    if isinstance(node, cst.Integer | cst.Float):
        return True, node.evaluated_value
    if isinstance(node, cst.Name) and node.value in ("True", "False", "None"):
        return True, {"True": True, "False": False, "None": None}[node.value]
    return False, None


class _FoldConstants(cst.CSTTransformer):
    """Folds what the replacement made constant, and drops the branches it made dead."""

    def leave_UnaryOperation(
        self, original: cst.UnaryOperation, updated: cst.UnaryOperation
    ) -> cst.BaseExpression:
        truth = _truth(updated.expression)
        if isinstance(updated.operator, cst.Not) and truth is not None:
            return cst.Name("False" if truth else "True")
        return updated

    def leave_BooleanOperation(
        self, original: cst.BooleanOperation, updated: cst.BooleanOperation
    ) -> cst.BaseExpression:
        left = _truth(updated.left)
        if left is None:
            return updated  # `x and True` is not `x` outside a condition: see _condition
        if isinstance(updated.operator, cst.And):
            return updated.right if left else updated.left
        return updated.left if left else updated.right

    def leave_Comparison(
        self, original: cst.Comparison, updated: cst.Comparison
    ) -> cst.BaseExpression:
        if len(updated.comparisons) != 1:
            return updated
        target = updated.comparisons[0]
        known_left, left = _constant(updated.left)
        known_right, right = _constant(target.comparator)
        if not (known_left and known_right):
            return updated
        if isinstance(target.operator, cst.Equal | cst.Is):
            return cst.Name("True" if left == right else "False")
        if isinstance(target.operator, cst.NotEqual | cst.IsNot):
            return cst.Name("True" if left != right else "False")
        return updated

    def leave_IndentedBlock(
        self, original: cst.IndentedBlock, updated: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        # A kept branch that returns makes whatever followed the old if unreachable.
        for index, statement in enumerate(updated.body):
            if isinstance(statement, cst.SimpleStatementLine) and any(
                isinstance(small, cst.Return | cst.Raise) for small in statement.body
            ):
                return updated.with_changes(body=updated.body[: index + 1])
        return updated

    def leave_IfExp(self, original: cst.IfExp, updated: cst.IfExp) -> cst.BaseExpression:
        updated = updated.with_changes(test=_condition(updated.test))
        truth = _truth(updated.test)
        if truth is None:
            return updated
        return updated.body if truth else updated.orelse

    def leave_If(
        self, original: cst.If, updated: cst.If
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement] | cst.RemovalSentinel:
        updated = updated.with_changes(test=_condition(updated.test))
        truth = _truth(updated.test)
        if truth is None:
            return updated
        if truth:
            return _flatten(updated.body, updated.leading_lines)
        if updated.orelse is None:
            return cst.RemoveFromParent()
        if isinstance(updated.orelse, cst.If):  # elif: it becomes the if
            return updated.orelse.with_changes(leading_lines=updated.leading_lines)
        return _flatten(updated.orelse.body, updated.leading_lines)


def _condition(test: cst.BaseExpression) -> cst.BaseExpression:
    """In a condition only truth matters: `x and True` and `x or False` are `x`."""
    if isinstance(test, cst.BooleanOperation):
        right = _truth(test.right)
        if (right is True and isinstance(test.operator, cst.And)) or (
            right is False and isinstance(test.operator, cst.Or)
        ):
            return _condition(test.left)
    return test


def _flatten(
    block: cst.BaseSuite, leading: Sequence[cst.EmptyLine]
) -> cst.FlattenSentinel[cst.BaseStatement]:
    body: list[cst.BaseStatement] = []
    if isinstance(block, cst.IndentedBlock):
        body = list(block.body)
    elif isinstance(block, cst.SimpleStatementSuite):  # `if x: y` on one line
        body = [cst.SimpleStatementLine(body=list(block.body))]
    if body and isinstance(body[0], cst.SimpleStatementLine | cst.BaseCompoundStatement):
        first = body[0]
        body[0] = first.with_changes(leading_lines=[*leading, *first.leading_lines])
    return cst.FlattenSentinel(body)


def _imported_names(module: cst.Module) -> dict[str, tuple[str, str | None]]:
    """Local name -> (module, imported object or None) of every top-level import."""
    names: dict[str, tuple[str, str | None]] = {}
    for statement in module.body:
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if isinstance(small, cst.ImportFrom) and not isinstance(small.names, cst.ImportStar):
                source = cst.Module([]).code_for_node(small.module) if small.module else ""
                source = "." * len(small.relative) + source
                for alias in small.names:
                    local = alias.asname.name if alias.asname else alias.name
                    names[cst.Module([]).code_for_node(local)] = (
                        source,
                        cst.Module([]).code_for_node(alias.name),
                    )
            elif isinstance(small, cst.Import):
                for alias in small.names:
                    dotted = cst.Module([]).code_for_node(alias.name)
                    local = alias.asname.name if alias.asname else alias.name
                    names[cst.Module([]).code_for_node(local).split(".")[0]] = (dotted, None)
    return names


def _used_names(module: cst.Module) -> set[str]:
    wrapper = cst.metadata.MetadataWrapper(module)
    scopes = wrapper.resolve(ScopeProvider)
    used: set[str] = set()
    for scope in set(scopes.values()):
        if scope is None:
            continue
        for access in scope.accesses:
            node = access.node
            if isinstance(node, cst.Name):
                used.add(node.value)
            elif isinstance(node, cst.Attribute):
                used.add(cst.Module([]).code_for_node(node).split(".")[0])
    return used


def _module_aliases(module: cst.Module, key: str) -> set[str]:
    """Module-level constants that hold the key (``CHECKOUT = "new-checkout"``)."""
    found = set()
    for statement in module.body:
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if (
                isinstance(small, cst.Assign)
                and len(small.targets) == 1
                and isinstance(small.targets[0].target, cst.Name)
                and isinstance(small.value, cst.SimpleString)
                and small.value.evaluated_value == key
            ):
                found.add(small.targets[0].target.value)
    return found


def _keep_gap_after_docstring(original: cst.Module, cleaned: cst.Module) -> cst.Module:
    """A removed first import takes the blank line after the module docstring with it."""
    if len(original.body) < 2 or len(cleaned.body) < 2:
        return cleaned
    if not cleaned.body[0].deep_equals(original.body[0]):
        return cleaned
    second = cleaned.body[1]
    if isinstance(second, cst.SimpleStatementLine | cst.BaseCompoundStatement) and not (
        second.leading_lines
    ):
        gap = [cst.EmptyLine()]
        body = [cleaned.body[0], second.with_changes(leading_lines=gap), *cleaned.body[2:]]
        return cleaned.with_changes(body=body)
    return cleaned


@dataclass(frozen=True)
class Rewrite:
    path: str
    before: str
    after: str
    checks: int

    @property
    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                f"a/{self.path}",
                f"b/{self.path}",
            )
        )


def rewrite_python(
    source: str,
    key: str,
    served: Served,
    aliases: frozenset[str] = frozenset(),
    path: str = "",
) -> Rewrite:
    """The source with every check of ``key`` replaced by ``served`` and dead code removed."""
    module = cst.parse_module(source)
    names = set(aliases) | _module_aliases(module, key)
    replace = _ReplaceChecks(key, served, names)
    replaced = module.visit(replace)
    if not replace.changed:
        return Rewrite(path, source, source, 0)
    folded = replaced.visit(_FoldConstants())
    before_used = _used_names(module)
    after_used = _used_names(folded)
    gone = [
        (source_module, obj, None)
        for local, (source_module, obj) in _imported_names(folded).items()
        if local in before_used and local not in after_used
    ]
    wrapper = cst.MetadataWrapper(folded)
    cleaned = wrapper.visit(RemoveImportsVisitor(CodemodContext(wrapper=wrapper), gone))
    cleaned = _keep_gap_after_docstring(module, cleaned)
    return Rewrite(path, source, cleaned.code, replace.changed)


__all__ = ["Rewrite", "Served", "rewrite_python"]
