"""Finds flag keys in source trees: Python (parsed with ast), JS/TS/TSX and Django/Jinja
templates (matched per call form), honouring .gitignore files and repository aliases.

Imports no Django: CI can run it anywhere. Aliases live in ``.flagsite.yaml`` (or
``.flagsite.toml``) at the repository root, in the spirit of ld-find-code-refs::

    aliases:
      constants:            # a name that holds a key
        CHECKOUT_FLAG: new-checkout
      patterns:             # regexes over every scanned file, with groups "alias" and "key"
        - '(?P<alias>[A-Z][A-Z0-9_]*)\\s*=\\s*["''](?P<key>[a-z0-9][a-z0-9_.-]*)["'']'
"""

from __future__ import annotations

import ast
import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pathspec
import yaml

PYTHON = {".py"}
SCRIPT = {".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs", ".mts", ".cts"}
TEMPLATE = {".html", ".htm", ".jinja", ".jinja2", ".j2", ".djhtml", ".txt"}
CONFIG_NAMES = (".flagsite.yaml", ".flagsite.yml", ".flagsite.toml")

# Python SDK (client and request.flags), its OpenFeature provider, the Django decorators.
PY_CALLS = {
    "is_enabled", "variant", "value", "details", "get_boolean", "get_string", "get_number",
    "get_json", "get_boolean_value", "get_string_value", "get_integer_value",
    "get_float_value", "get_object_value", "get_boolean_details", "get_string_details",
    "get_integer_details", "get_float_details", "get_object_details", "flag_required",
    "kill_switch",
}  # fmt: skip
# Node SDK, React hooks and OpenFeature (web and server) calls whose first argument is a key.
JS_CALLS = (
    "isEnabled", "variant", "getVariant", "value", "getValue", "details", "getDetails",
    "useFeatureFlag", "useVariant", "useFlagDetails", "useFlag", "getBooleanValue",
    "getStringValue", "getNumberValue", "getObjectValue", "getBooleanDetails",
    "getStringDetails", "getNumberDetails", "getObjectDetails", "useBooleanFlagValue",
    "useStringFlagValue", "useNumberFlagValue", "useObjectFlagValue",
)  # fmt: skip
KEY = r"[a-z0-9][a-z0-9_.-]{0,99}"
JS_CALL = re.compile(
    rf"\b(?P<via>{'|'.join(JS_CALLS)})\s*(?:<[^>()]*>)?\(\s*(?:(?P<q>['\"`])(?P<key>{KEY})(?P=q)"
    r"|(?P<name>[A-Za-z_$][\w$.]*)\s*[,)])"
)
TEMPLATE_TAG = re.compile(
    rf"{{%\s*(?P<via>flag_enabled|flag_variant|flag_value)\s+(?P<q>['\"])(?P<key>{KEY})(?P=q)"
)
JINJA_CALL = re.compile(
    rf"\b(?P<via>flag_enabled|flag_variant|flag_value|is_enabled|variant)\s*\(\s*"
    rf"(?P<q>['\"])(?P<key>{KEY})(?P=q)"
)


@dataclass(frozen=True, order=True)
class Reference:
    path: str
    line: int
    flag_key: str
    via: str
    context: str


@dataclass
class Aliases:
    constants: dict[str, str] = field(default_factory=dict)
    patterns: list[re.Pattern[str]] = field(default_factory=list)

    @classmethod
    def load(cls, root: Path) -> Aliases:
        for name in CONFIG_NAMES:
            path = root / name
            if path.is_file():
                text = path.read_text()
                data = tomllib.loads(text) if name.endswith(".toml") else yaml.safe_load(text)
                return cls.from_config(data or {}, str(path))
        return cls()

    @classmethod
    def from_config(cls, data: dict[str, object], source: str) -> Aliases:
        raw = data.get("aliases", {})
        if not isinstance(raw, dict):
            raise ValueError(f"{source}: 'aliases' must be a mapping")
        constants = raw.get("constants", {}) or {}
        patterns = raw.get("patterns", []) or []
        if not isinstance(constants, dict) or not isinstance(patterns, list):
            raise ValueError(f"{source}: aliases.constants is a mapping, aliases.patterns a list")
        compiled = []
        for pattern in patterns:
            regex = re.compile(str(pattern), re.MULTILINE)
            if not {"alias", "key"} <= set(regex.groupindex):
                raise ValueError(f"{source}: pattern {pattern!r} needs groups 'alias' and 'key'")
            compiled.append(regex)
        return cls({str(k): str(v) for k, v in constants.items()}, compiled)

    def learn(self, text: str) -> None:
        for regex in self.patterns:
            for match in regex.finditer(text):
                self.constants.setdefault(match["alias"], match["key"])


def find_root_config(start: Path) -> Path:
    """The directory holding the alias config: ``start`` or the nearest parent that has one
    (stopping at the repository root)."""
    for folder in [start, *start.parents]:
        if any((folder / n).is_file() for n in CONFIG_NAMES) or (folder / ".git").exists():
            return folder
    return start


def iter_files(root: Path) -> Iterator[Path]:
    """Scannable files under ``root``, skipping what its .gitignore files exclude (each one
    applies below its own folder, as in git)."""
    specs: list[tuple[Path, pathspec.GitIgnoreSpec]] = []

    def ignored(path: Path, is_dir: bool) -> bool:
        for base, spec in specs:
            if base == path or base not in path.parents:
                continue
            rel = path.relative_to(base).as_posix() + ("/" if is_dir else "")
            if spec.match_file(rel):
                return True
        return False

    if root.is_file():
        yield root
        return
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        specs = [(b, s) for b, s in specs if b == here or b in here.parents]
        ignore_file = here / ".gitignore"
        if ignore_file.is_file():
            lines = ignore_file.read_text().splitlines()
            specs.append((here, pathspec.GitIgnoreSpec.from_lines(lines)))
        dirs[:] = sorted(d for d in dirs if d != ".git" and not ignored(here / d, True))
        for name in sorted(files):
            path = here / name
            if path.suffix in PYTHON | SCRIPT | TEMPLATE and not ignored(path, False):
                yield path


class _PythonVisitor(ast.NodeVisitor):
    def __init__(self, aliases: dict[str, str]) -> None:
        self.aliases = aliases
        self.found: list[tuple[int, str, str]] = []
        self._in_call: set[int] = set()

    def _key(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value if re.fullmatch(KEY, node.value) else None
        name = _dotted_tail(node)
        return self.aliases.get(name) if name else None

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in PY_CALLS and node.args:
            key = self._key(node.args[0])
            if key is not None:
                self.found.append((node.lineno, key, str(name)))
                self._in_call.add(id(node.args[0]))
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in self.aliases and id(node) not in self._in_call:
            self.found.append((node.lineno, self.aliases[node.id], "alias"))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in self.aliases and id(node) not in self._in_call:
            self.found.append((node.lineno, self.aliases[node.attr], "alias"))
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        # The alias's own definition is not a use of the flag.
        self.visit(node.value)


def _dotted_tail(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def scan_python(text: str, aliases: dict[str, str]) -> list[tuple[int, str, str]]:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    visitor = _PythonVisitor(aliases)
    visitor.visit(tree)
    return visitor.found


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def scan_script(text: str, aliases: dict[str, str]) -> list[tuple[int, str, str]]:
    found = []
    used_at: set[int] = set()
    for match in JS_CALL.finditer(text):
        key = match["key"]
        if key is None:
            key = aliases.get(match["name"].rsplit(".", 1)[-1])
            used_at.add(match.start("name"))
        if key is not None:
            found.append((_line_of(text, match.start()), key, match["via"]))
    found += _alias_uses(text, aliases, used_at)
    return found


def _alias_uses(text: str, aliases: dict[str, str], skip: set[int]) -> list[tuple[int, str, str]]:
    if not aliases:
        return []
    names = "|".join(re.escape(a) for a in sorted(aliases, key=len, reverse=True))
    found = []
    for match in re.finditer(rf"(?<![\w$.])(?:[\w$]+\.)*({names})(?![\w$])", text):
        if match.start() in skip:
            continue
        after = text[match.end() : match.end() + 4].lstrip(" ")
        if after.startswith("=") and not after.startswith("=="):
            continue  # the alias's definition
        line_start = text.rfind("\n", 0, match.start()) + 1
        if text[line_start:].lstrip().startswith("import "):
            continue  # importing the constant is not using the flag
        found.append((_line_of(text, match.start(1)), aliases[match[1]], "alias"))
    return found


def scan_template(text: str, aliases: dict[str, str]) -> list[tuple[int, str, str]]:
    """Django tags ({% flag_enabled "key" %}) and Jinja calls (flag_enabled("key"))."""
    by_offset: dict[int, tuple[int, str, str]] = {}
    for regex in (TEMPLATE_TAG, JINJA_CALL):
        for match in regex.finditer(text):
            hit = (_line_of(text, match.start()), match["key"], match["via"])
            by_offset.setdefault(match.start("key"), hit)
    return [by_offset[offset] for offset in sorted(by_offset)]


def scan_paths(paths: list[Path], aliases: Aliases | None = None) -> list[Reference]:
    """Every reference under ``paths``; paths in results are relative to the config root."""
    if not paths:
        return []
    root = find_root_config(paths[0].resolve() if paths[0].is_dir() else paths[0].resolve().parent)
    aliases = aliases if aliases is not None else Aliases.load(root)
    files = [f for p in paths for f in iter_files(p.resolve())]
    texts: dict[Path, str] = {}
    for f in files:
        try:
            texts[f] = f.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        aliases.learn(texts[f])
    refs: set[Reference] = set()
    for f, text in texts.items():
        if f.suffix in PYTHON:
            hits = scan_python(text, aliases.constants)
        elif f.suffix in SCRIPT:
            hits = scan_script(text, aliases.constants)
        else:
            hits = scan_template(text, aliases.constants)
        lines = text.splitlines()
        rel = f.relative_to(root).as_posix() if root in f.parents else f.as_posix()
        for line, key, via in hits:
            context = lines[line - 1].strip() if line <= len(lines) else ""
            refs.add(Reference(rel, line, key, via, context[:500]))
    return sorted(refs)
