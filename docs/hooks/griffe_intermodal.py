"""A griffe extension for the API reference (mkdocs.yml loads it): the docstrings are
written for readers of the source, and three of their habits would show badly on the site.

- Sphinx roles (``:class:`~intermodal.errors.ConfigError```) become code spans
  (`` `ConfigError` ``; ``~`` keeps the last part of the path, as Sphinx does).
- Sections underlined in NumPy's way (``Parameters`` over ``----------``) hold prose, not
  NumPy's ``name : type`` fields (``rows : array of complete rows, ...``): they become a
  bold title over a list of ``name``: description items (parameters) or a paragraph
  (returns, raises), so that a description is not shown as a type.
- A class attribute without a docstring takes the comment written for it: the comment at
  the end of its line, or else the comment lines directly above it (not a section rule
  such as ``# --- data ---``). The fields of ``RunConfig`` are documented this way.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")
SECTION_RULE = re.compile(r"-{3,}")
ITEM = re.compile(r"(\*{0,2}\w+) : (.*)")
LISTED = {"Parameters", "Other Parameters", "Attributes"}


def _code_span(match: re.Match) -> str:
    short, path = match.groups()
    return f"`{path.rsplit('.', 1)[-1] if short else path}`"


def _sections_as_markdown(text: str) -> str:
    lines, out, listed = text.splitlines(), [], False
    for i, line in enumerate(lines):
        if SECTION_RULE.fullmatch(line.strip()) and i and lines[i - 1].strip():
            continue  # the rule under a title, dropped with it
        if i + 1 < len(lines) and SECTION_RULE.fullmatch(lines[i + 1].strip()) and line.strip():
            listed = line.strip() in LISTED
            out += [f"**{line.strip()}**", ""]
            continue
        item = ITEM.fullmatch(line) if listed else None
        out.append(f"- `{item.group(1)}`: {item.group(2)}" if item else line)
    return "\n".join(out)


@cache
def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _comment_for(lines: list[str], lineno: int) -> str:
    """The comment that documents the statement on line ``lineno`` (1-based)."""
    code, hash_, trailing = lines[lineno - 1].partition("  # ")
    if hash_ and code.strip():
        return trailing.strip()
    above = []
    for line in reversed(lines[: lineno - 1]):
        text = line.strip()
        if not text.startswith("#") or text.startswith("# ---"):
            break
        above.append(text.lstrip("#").strip())
    return " ".join(reversed(above))


class IntermodalDocstrings(griffe.Extension):
    def on_instance(self, *, node: ast.AST | griffe.ObjectNode, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _sections_as_markdown(ROLE.sub(_code_span, obj.docstring.value))

    def on_attribute_instance(self, *, node: ast.AST | griffe.ObjectNode, attr: griffe.Attribute, **kwargs) -> None:
        if attr.docstring is not None or not attr.parent or not attr.parent.is_class or attr.lineno is None:
            return
        if not isinstance(attr.filepath, Path):
            return
        comment = _comment_for(_lines(attr.filepath), attr.lineno)
        if comment:
            attr.docstring = griffe.Docstring(comment, lineno=attr.lineno, parent=attr)
