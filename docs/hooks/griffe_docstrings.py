"""Griffe extension of the gltheory site: two rewrites of every docstring before rendering.

The docstrings are Markdown (Kidger style: **Arguments:** / **Returns:**, math as ``$...$``
and ``$$...$$``), read by ``help()`` as plain text as well; two habits of that text do not
render as intended in Markdown, and this extension adapts them for the site only:

- **Sphinx roles** such as :func:`critical_times` or :class:`~gltheory.data.TwoPoint` become
  inline code (`critical_times`, `TwoPoint`; a leading ``~`` keeps only the last component,
  as in Sphinx);
- **display math inside a paragraph** (``... with\\n$$ x = y $$\\nand ...``) is set apart by
  blank lines, which pymdownx.arithmatex needs to treat it as a block (otherwise its ``$$``
  show up as text). The formula's indentation is rounded down to a multiple of 4 (what a
  list item's content is dedented by), the text after it keeps its own.

Listed under the mkdocstrings options in ``mkdocs.yml``.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|data|attr|obj|exc|const):`(~?)([^`]+)`")
_DISPLAY = re.compile(r"(?P<indent>[ \t]*)(?P<before>[^\n]*?)\$\$(?P<body>.+?)\$\$[ \t]*", re.S)


def _code(m: re.Match) -> str:
    target = m.group(2).strip()
    if m.group(1):
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def strip_roles(text: str) -> str:
    """``text`` with every Sphinx cross-reference role replaced by inline code."""
    return _ROLE.sub(_code, text)


def _block(m: re.Match) -> str:
    indent, before = m.group("indent"), m.group("before").rstrip()
    head = f"{indent}{before}" if before else ""
    # Python-Markdown dedents list content by 4 columns and arithmatex wants `$$` at the start
    # of a line: round the formula's indentation down to a multiple of 4
    width = len(indent.expandtabs(4))
    math_indent = " " * (width - width % 4)
    return f"{head}\n\n{math_indent}$${m.group('body').strip()}$$\n\n{indent}"


def separate_display_math(text: str) -> str:
    """``text`` with each ``$$...$$`` made a paragraph of its own (blank lines around it)."""
    if "$$" not in text:
        return text
    out = _DISPLAY.sub(_block, text)
    out = re.sub(r"\n[ \t]+\n", "\n\n", out)  # whitespace-only lines left by the split
    return re.sub(r"\n{3,}", "\n\n", out)


class DocstringMarkdown(griffe.Extension):
    """Apply ``strip_roles`` and ``separate_display_math`` to every docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = separate_display_math(strip_roles(obj.docstring.value))
