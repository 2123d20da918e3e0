"""The documentation site's sources, checked without building it (fast).

The build itself (`bash docs/build.sh`: `mkdocs build --strict` with the notebooks executed,
then `docs/check_site.py` on the HTML) runs in the slow tier of `.ci/run`.
"""

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"

_spec = importlib.util.spec_from_file_location("gltheory_check_site", DOCS / "check_site.py")
check_site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_site)

_DIRECTIVE = re.compile(r"^::: *([\w.]+)[ \t]*\n((?:[ \t]+.*\n|[ \t]*\n)*)", re.M)


def directives() -> dict[str, str]:
    """``{dotted path: option block}`` of every mkdocstrings directive under docs/api/."""
    found = {}
    for page in sorted((DOCS / "api").glob("*.md")):
        for m in _DIRECTIVE.finditer(page.read_text(encoding="utf-8")):
            assert m.group(1) not in found, f"{m.group(1)} is documented twice"
            found[m.group(1)] = m.group(2)
    return found


def documented_paths() -> set[str]:
    """The dotted paths that get an entry in the API pages.

    A module directive renders the module and, unless its options say ``members: false`` or
    list the members, every public name of the module (the site's ``filters: public`` follows
    ``__all__``, as ``check_site.public_names`` does).
    """
    paths = set()
    for path, options in directives().items():
        paths.add(path)
        listed = re.search(r"^\s*members:\s*(.*)$", options, re.M)
        if listed and listed.group(1).strip().lower() in ("false", "no", "[]"):
            continue
        if listed:
            names = re.findall(r"^\s*-\s*(\w+)\s*$", options[listed.end() :], re.M)
            paths.update(f"{path}.{n}" for n in names)
            continue
        if importlib.util.find_spec(path) is not None:
            paths.update(f"{path}.{n}" for n in check_site.public_names(path))
    return paths


def test_every_public_module_has_an_api_page():
    documented = set(directives())
    missing = [m for m in check_site.public_modules() if m not in documented]
    assert not missing, f"modules without a `::: module` directive in docs/api/: {missing}"


@pytest.mark.parametrize("module", check_site.public_modules())
def test_every_public_name_is_documented(module):
    paths = documented_paths()
    missing = [
        f"{module}.{name}"
        for name in check_site.public_names(module)
        if check_site.documented_as(module, name, paths) is None
    ]
    assert not missing, f"public names with no entry in docs/api/: {missing}"


def test_the_name_check_can_fail():
    """A name that no page documents is reported (the check above is not vacuous)."""
    paths = documented_paths() - {"gltheory.processes.OU"}
    assert check_site.documented_as("gltheory.processes", "OU", paths) is None
    assert check_site.documented_as("gltheory", "OU", paths) is None
    assert check_site.documented_as("gltheory", "OU", documented_paths()) == (
        "gltheory.processes.OU"
    )


def test_every_api_page_and_notebook_is_in_the_nav():
    nav = MKDOCS_YML.read_text(encoding="utf-8")
    pages = [f"api/{p.name}" for p in sorted((DOCS / "api").glob("*.md"))]
    notebooks = [f"examples/{p.name}" for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))]
    assert len(notebooks) >= 7
    missing = [p for p in pages + notebooks if f": {p}" not in nav and f"- {p}" not in nav]
    assert not missing, f"not in mkdocs.yml's nav: {missing}"


def test_home_page_has_the_readme_quick_start_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    home = (DOCS / "index.md").read_text(encoding="utf-8")
    commands = [
        re.search(rf"<!-- ci:{name} -->\s*```bash\n(.*?)\n```", readme, re.S).group(1)
        for name in ("report-command", "test-command")
    ]
    for cmd in commands:
        assert f"```bash\n{cmd}\n```" in home, f"docs/index.md lacks the README command {cmd!r}"


def test_math_is_vendored_not_fetched():
    cfg = MKDOCS_YML.read_text(encoding="utf-8")
    assert not re.search(r"^\s*-\s*(?:https?:)?//", cfg, re.M), "mkdocs.yml loads a URL"
    for f in ("katex.min.js", "katex.min.css", "contrib/auto-render.min.js", "LICENSE"):
        assert (DOCS / "assets" / "katex" / f).is_file(), f
    css = (DOCS / "assets" / "katex" / "katex.min.css").read_text(encoding="utf-8")
    fonts = set(re.findall(r"url\((fonts/[^)]+\.woff2)\)", css))
    assert fonts and all((DOCS / "assets" / "katex" / f).is_file() for f in fonts)


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_page_renders_a_report_json(tmp_path, monkeypatch):
    """The hook puts the table of a report.json on docs/report.md, formatted as the CLI does."""
    pytest.importorskip("mkdocs", reason="the `docs` extra is not installed")
    from gltheory.report import Row, format_table

    hooks = _load("gltheory_docs_hooks", DOCS / "hooks" / "gltheory_docs.py")
    rows = [
        Row(
            "t_c^S (OU, two points)",
            0.34657,
            0.3466,
            tol=1e-3,
            tol_basis="solver",
            group="critical_times",
            note="tol = 1e-3, the root finder's bracket",
        ),
        Row("fraction at +1", 0.8, 0.79, se=0.001, group="two_point_sde"),  # 10 SE: off
    ]
    path = tmp_path / "report.json"
    path.write_text(
        json.dumps(
            {"status": "off", "rows": [r.to_dict() for r in rows], "environment": {"jax": "x"}}
        )
    )
    page = (DOCS / "report.md").read_text(encoding="utf-8")
    assert hooks.REPORT_MARKER in page
    monkeypatch.setenv("GLTHEORY_REPORT_JSON", str(path))
    text = hooks.on_page_markdown(page, None, None, None)
    assert hooks.REPORT_MARKER not in text
    assert format_table(rows) in text and "2 rows, 1 off" in text
    monkeypatch.setenv("GLTHEORY_REPORT_JSON", str(tmp_path / "missing.json"))
    assert "No report in this build" in hooks.on_page_markdown(page, None, None, None)


def test_docstring_rewrites():
    pytest.importorskip("griffe", reason="the `docs` extra is not installed")
    ext = _load("gltheory_griffe_docstrings", DOCS / "hooks" / "griffe_docstrings.py")
    assert ext.strip_roles(":func:`critical_times` and :class:`~gltheory.data.TwoPoint`") == (
        "`critical_times` and `TwoPoint`"
    )
    assert ext.separate_display_math("with\n$$a = b$$\n(Tweedie).") == (
        "with\n\n$$a = b$$\n\n(Tweedie)."
    )
    # inside a list item: the formula moves to a multiple of 4 columns, the text stays in place
    assert ext.separate_display_math("- item\n  $$x$$ and more\n- next") == (
        "- item\n\n$$x$$\n\n  and more\n- next"
    )
    assert ext.separate_display_math("inline $a$ only") == "inline $a$ only"
