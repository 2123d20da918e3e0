"""Every theory citation resolves to a page and an anchor of ``docs/theory/``.

The code, notebooks, README, benchmarks, tests and docs cite the theory in one form,
``docs/theory/<page>.md#<anchor>``; the theory pages link to each other with relative links
such as ``meanfield.md#exponents``. This test checks that every such page exists and defines the
anchor (an explicit attr_list id ``{#anchor}``, or the id Python-Markdown's ``toc`` extension
gives a heading without one), and that nothing cites the old theory notes any more (the file
``THEORY.md`` outside the repository, "THEORY §x.y", bare "§x.y" section numbers in code).
Pure text processing, well under a second.
"""

import re
import unicodedata
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
THEORY = DOCS / "theory"

SCANNED = (
    "gltheory",
    "notebooks",
    "benchmarks",
    "docs",
    "tests",
    "README.md",
    "ARCHITECTURE.md",
    "CHANGELOG.md",
)
SUFFIXES = {".py", ".md", ".txt", ".toml", ".yml", ".yaml", ".cff", ".cfg"}
SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", "assets", "site", "notebook_outputs"}

# docs/theory/<page>.md with an optional #anchor, anywhere in the text
CITATION = re.compile(r"docs/theory/([\w.-]+?\.md)(?:#([\w-]+))?")
# a Markdown link target: [text](target)
LINK = re.compile(r"\]\(\s*<?([^()\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# citations of the old notes: THEORY.md, "THEORY §4.3", "THEORY 4.8", "THEORY's", shared/THEORY
OLD_NOTES = re.compile(r"shared/THEORY|(?<![A-Za-z0-9_])THEORY(?:\.md|\s*§|\s+\d|'s\b|\s+notes\b)")
# a bare section number "§4.3" (in code, notebooks and top-level files; the docs may use §)
BARE_SECTION = re.compile(r"§\s*\d")

ATTR_ID = re.compile(r"\{:?[^{}\n]*?#([A-Za-z][\w-]*)[^{}\n]*\}")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
HEADING_ID = re.compile(r"[ \t]*\{:?[^{}]*\}[ \t]*$")
FENCE = re.compile(r"^\s*(```|~~~)")
IDCOUNT = re.compile(r"^(.*)_([0-9]+)$")


def slugify(value: str, separator: str = "-") -> str:
    """Python-Markdown's ``toc`` default slug (``markdown.extensions.toc.slugify``)."""
    value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(rf"[{separator}\s]+", separator, value)


def _unique(id_: str, ids: set[str]) -> str:
    """``toc``'s de-duplication: ``a``, ``a_1``, ``a_2``, ..."""
    while id_ in ids or not id_:
        m = IDCOUNT.match(id_)
        id_ = f"{m.group(1)}_{int(m.group(2)) + 1}" if m else f"{id_}_1"
    ids.add(id_)
    return id_


def _heading_text(raw: str) -> str:
    """The text ``toc`` sees of a heading: no emphasis markers, no code backticks, no ``$``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", raw)  # links keep their text
    return re.sub(r"[`*$]", "", text)


def anchors_of_text(text: str) -> set[str]:
    """All ids a Markdown page defines: explicit ``{#id}`` attributes and heading slugs."""
    lines, in_fence = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            lines.append(line)
    ids = {m.group(1) for line in lines for m in ATTR_ID.finditer(line)}
    for line in lines:
        m = HEADING.match(line)
        if m is None or ATTR_ID.search(m.group(2)):
            continue
        _unique(slugify(_heading_text(HEADING_ID.sub("", m.group(2)))), ids)
    return ids


@cache
def anchors_of_page(page: Path) -> frozenset[str]:
    return frozenset(anchors_of_text(page.read_text(encoding="utf-8")))


def _check_target(page: Path, anchor: str | None, shown: str) -> str | None:
    """Why ``page#anchor`` does not resolve (``None`` if it does)."""
    if not page.is_file():
        return f"{shown}: no such page"
    if anchor and anchor not in anchors_of_page(page):
        return f"{shown}: {page.relative_to(ROOT)} defines no anchor #{anchor}"
    return None


def problems_in_text(text: str, where: Path) -> list[str]:
    """Every dangling theory reference and every citation of the old notes in ``text``.

    ``where`` is the file the text comes from (relative links in ``docs/`` are resolved from
    it; the bare-§ rule applies outside ``docs/``).
    """
    problems = []
    try:
        shown_file = str(where.relative_to(ROOT))
    except ValueError:
        shown_file = str(where)
    in_docs = DOCS in where.parents
    for lineno, line in enumerate(text.splitlines(), 1):
        at = f"{shown_file}:{lineno}"
        for m in CITATION.finditer(line):
            why = _check_target(THEORY / m.group(1), m.group(2), m.group(0))
            if why:
                problems.append(f"{at}: {why}")
        if where.suffix == ".md" and in_docs:
            for m in LINK.finditer(line):
                target = m.group(1)
                if "://" in target or target.startswith(("mailto:", "/")):
                    continue
                path, _, anchor = target.partition("#")
                page = where if not path else (where.parent / path).resolve()
                if page.suffix != ".md" or THEORY not in page.parents:
                    continue
                why = _check_target(page, anchor or None, target)
                if why:
                    problems.append(f"{at}: link {why}")
        if OLD_NOTES.search(line):
            problems.append(f"{at}: cites the old theory notes: {line.strip()[:120]}")
        elif not in_docs and BARE_SECTION.search(line):
            problems.append(f"{at}: bare section number of the old notes: {line.strip()[:120]}")
    return problems


def scanned_files() -> list[Path]:
    files = []
    for name in SCANNED:
        base = ROOT / name
        if base.is_file():
            files.append(base)
            continue
        for path in sorted(base.rglob("*")):
            if (
                path.is_file()
                and path.suffix in SUFFIXES
                and not SKIP_DIRS.intersection(path.relative_to(ROOT).parts)
                and path.resolve() != Path(__file__).resolve()
            ):
                files.append(path)
    return files


def test_theory_pages_exist():
    pages = {p.name for p in THEORY.glob("*.md")}
    expected = {"index", "processes", "score", "critical-times", "meanfield", "cloning", "patch"}
    expected |= {"field", "guidance", "thermo", "nets"}
    assert {f"{name}.md" for name in expected} <= pages


def test_every_theory_reference_resolves_and_no_old_notes_are_cited():
    files = scanned_files()
    assert len(files) > 50, f"only {len(files)} files scanned"
    n_citations = 0
    problems = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        n_citations += len(CITATION.findall(text))
        problems += problems_in_text(text, path)
    assert n_citations > 100, f"only {n_citations} docs/theory citations found"
    assert not problems, f"{len(problems)} dangling or old-style references:\n" + "\n".join(
        problems
    )


# the checker itself: it must fail on what it is meant to catch


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Critical times", "critical-times"),
        ("Curie–Weiss form", "curieweiss-form"),
        ("The `score` criterion: $t_c^S$", "the-score-criterion-t_cs"),
        ("  Spaces   and-hyphens ", "spaces-and-hyphens"),
    ],
)
def test_slugify_matches_python_markdown(heading, slug):
    assert slugify(_heading_text(heading)) == slug


def test_anchors_of_text_explicit_ids_slugs_duplicates_and_fences():
    text = "\n".join(
        [
            "# Title {#top}",
            "## Same",
            "## Same",
            "### Explicit {: #given .cls}",
            "Paragraph.",
            "{#para-id}",
            "```",
            "## Not a heading",
            "```",
        ]
    )
    assert anchors_of_text(text) == {"top", "same", "same_1", "given", "para-id"}


def test_checker_flags_broken_references():
    where = ROOT / "gltheory" / "synthetic.py"
    good = "See `docs/theory/meanfield.md#self-consistency` and `docs/theory/index.md`."
    assert problems_in_text(good, where) == []
    bad = [
        "See `docs/theory/meanfield.md#no-such-anchor`.",
        "See `docs/theory/no-such-page.md#self-consistency`.",
        "(THEORY.md §1.4)",
        "(THEORY §4.3)",
        "THEORY 4.8",
        "Equations: `../shared/THEORY.md`",
        "the closed forms of §1.4",
    ]
    for line in bad:
        assert len(problems_in_text(line, where)) == 1, line
    page = THEORY / "field.md"  # relative links inside docs/theory, and same-page anchors
    assert problems_in_text("[ok](meanfield.md#exponents) [self](#correlation-length)", page) == []
    assert len(problems_in_text("[bad](meanfield.md#nope) [bad](nope.md) [bad](#nope)", page)) == 3
    # GLTHEORY_* environment variables and the like are not citations
    assert problems_in_text("GLTHEORY_NB_SMALL=1, _THEORY_TEXT", where) == []
