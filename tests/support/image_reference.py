"""Image references as Docker parses them: distribution/reference's grammar, read from its vendored source.

``regexp.go`` (tests/specs/upstream/distribution-reference/, v0.6.0) builds ``ReferenceRegexp`` from string
constants joined by ``+`` and four helpers (``optional``, ``anyTimes``, ``capture``, ``anchored``); this module
evaluates those expressions as written there and compiles the result, so a reference is judged by the
upstream grammar, not a restatement of it. Its own test table (``regexp_test.go``) is run against it.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import NamedTuple

UPSTREAM = Path(__file__).resolve().parents[1] / "specs" / "upstream" / "distribution-reference"
_TOKEN = re.compile(r"\s*(?:`(?P<literal>[^`]*)`|(?P<name>[A-Za-z_]\w*)|(?P<op>[+(),]))")
# The helpers of regexp.go: the group each wraps its joined arguments in.
_HELPERS = {"optional": "(?:{})?", "anyTimes": "(?:{})*", "capture": "({})", "anchored": "^{}$"}
# RE2 syntax that Python's re spells differently.
_CLASSES = {"[:xdigit:]": "0-9A-Fa-f"}


class Reference(NamedTuple):
    """The three groups of ``ReferenceRegexp``: name, tag and digest ("" when absent)."""

    name: str
    tag: str
    digest: str


def _definitions(source: str) -> dict[str, str]:
    """Every ``name = expression`` of the file's ``const (...)`` and ``var (...)`` blocks."""
    definitions: dict[str, str] = {}
    for block in re.findall(r"^(?:const|var) \((.*?)^\)", source, flags=re.M | re.S):
        for name, expression in re.findall(r"^\s+(\w+)\s+=\s+(.+)$", block, flags=re.M):
            definitions[name] = expression.strip()
    return definitions


class _Evaluator:
    """Evaluates the string expressions of regexp.go: literals, names, ``+`` and the helpers."""

    def __init__(self, definitions: dict[str, str]) -> None:
        self.definitions = definitions
        self.tokens: list[tuple[str, str]] = []
        self.position = 0

    def value(self, name: str) -> str:
        """The string the definition ``name`` evaluates to."""
        outer, self.tokens, self.position = (self.tokens, self.position), self._tokenize(self.definitions[name]), 0
        result = self._sum()
        if self.position != len(self.tokens):
            raise ValueError(f"{name}: unexpected {self.tokens[self.position]}")
        self.tokens, self.position = outer
        return result

    @staticmethod
    def _tokenize(expression: str) -> list[tuple[str, str]]:
        tokens, at = [], 0
        while at < len(expression):
            match = _TOKEN.match(expression, at)
            if not match or match.end() == at:
                raise ValueError(f"cannot read {expression[at:]!r}")
            kind = str(match.lastgroup)
            tokens.append((kind, match.group(kind)))
            at = match.end()
        return tokens

    def _next(self) -> tuple[str, str]:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _sum(self) -> str:
        result = self._term()
        while self._peek() == ("op", "+"):
            self._next()
            result += self._term()
        return result

    def _term(self) -> str:
        kind, text = self._next()
        if kind == "literal":
            return text
        if kind != "name":
            raise ValueError(f"unexpected {text!r}")
        if self._peek() != ("op", "("):
            return self.value(text)
        self._next()
        arguments = [self._sum()]
        while self._next() == ("op", ","):
            arguments.append(self._sum())
        return _HELPERS[text].format("".join(arguments))


@cache
def reference_pattern() -> re.Pattern[str]:
    """``ReferenceRegexp`` of the vendored regexp.go, as a Python pattern (ASCII ``\\w``, as RE2's)."""
    pattern = _Evaluator(_definitions((UPSTREAM / "regexp.go").read_text(encoding="utf-8"))).value("referencePat")
    for class_name, members in _CLASSES.items():
        pattern = pattern.replace(class_name, members)
    return re.compile(pattern, flags=re.ASCII)


def parse(reference: str) -> Reference | None:
    """``reference`` split as Docker splits it, or None when the grammar refuses it."""
    match = reference_pattern().match(reference)
    return Reference(*(group or "" for group in match.groups())) if match else None


def upstream_cases() -> list[tuple[str, bool, list[str]]]:
    """``TestReferenceRegexp``'s table in the vendored regexp_test.go: input, whether it matches, its groups."""
    source = (UPSTREAM / "regexp_test.go").read_text(encoding="utf-8")
    table = source[source.index("func TestReferenceRegexp") :]
    table = re.sub(r"//[^\n]*", "", table[: table.index("for _, tc := range tests")])  # its comments
    cases = []
    for text in re.findall(r"\{\s*(input:.*?match:\s*(?:true|false),.*?)\}", table, flags=re.S):
        (subject,) = re.findall(r'input:\s*"([^"]*)"', text)
        matches = re.search(r"match:\s*(true|false)", text)
        groups = re.search(r"subs:\s*\[\]string\{([^}]*)", text + "}")
        subs = re.findall(r'"([^"]*)"', groups.group(1)) if groups else []
        cases.append((subject, bool(matches and matches.group(1) == "true"), subs))
    return cases
