"""A Griffe extension for the documentation site (mkdocs.yml loads it): the package's docstrings
are Google style with a few reStructuredText habits, which mkdocstrings would show raw.

- ``:class:`~gpu_summary.AnomalyReport``` (and ``:func:``, ``:meth:``, ``:mod:``, ``:attr:``,
  ``:data:``, ``:exc:``) becomes inline code, the last dotted part where ``~`` asks for it;
- ``.. note::`` becomes Google's ``Note:`` section (an admonition on the page);
- a paragraph ending in ``::`` (a literal block follows, an indented code block in Markdown)
  ends in ``:``.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")
_NOTE = re.compile(r"^(\s*)\.\. note::\s*$", re.MULTILINE)
_LITERAL = re.compile(r"(\S)::$", re.MULTILINE)


def _role(match: re.Match) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def to_markdown(text: str) -> str:
    """The docstring ``text`` with its reStructuredText roles and directives as Markdown."""
    text = _ROLE.sub(_role, text)
    text = _NOTE.sub(r"\1Note:", text)
    return _LITERAL.sub(r"\1:", text)


class RestructuredTextHabits(griffe.Extension):
    """Rewrites each docstring as it is loaded, before mkdocstrings parses it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
