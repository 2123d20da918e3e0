"""MkDocs hooks of the gltheory site (listed under ``hooks:`` in ``mkdocs.yml``).

- **Notebooks.** The examples gallery is the jupytext percent scripts
  ``notebooks/NN_*.py`` themselves, added to the site as ``examples/NN_*.py`` (mkdocs-jupyter
  renders and, by default, executes them), so the gallery cannot drift from the notebooks
  (they are copied into a temporary folder at each build; ``mkdocs serve`` watches
  ``notebooks/``). The kernel inherits this process's environment: the hook sets ``GLTHEORY_NB_SMALL=1`` (small
  sizes, unless already set), sends the notebooks' PNG copies to a temporary folder
  (``GLTHEORY_NB_OUT``), puts ``notebooks/`` on ``PYTHONPATH`` (for their shared
  ``_setup.py``) and drops a non-interactive ``MPLBACKEND`` (figures must reach the cell
  outputs).
- **No CDN.** nbconvert's page template loads MathJax (and mermaid) from a CDN; the hook
  removes those tags from the notebook pages. Math on every page is typeset by the KaTeX
  copy under ``docs/assets/katex/`` (``docs/assets/javascripts/katex-init.js``).
- **Theory references.** The code spans ``docs/theory/<page>.md#<anchor>`` (the citation form
  of docstrings and notebooks) become links to the chapter section.
- **The report table.** ``docs/report.md`` holds the marker ``<!-- gltheory:report-table -->``;
  the hook replaces it with the table of the ``report.json`` found at ``$GLTHEORY_REPORT_JSON``
  or ``gltheory-report/report.json`` (``gltheory report`` writes it there), formatted by
  ``gltheory.report.format_table``, or with a note saying that no report was found.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from mkdocs.utils import get_relative_url

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK_GLOB = "[0-9][0-9]_*.py"
EXAMPLES_DIR = "examples"
REPORT_MARKER = "<!-- gltheory:report-table -->"

_tmp_out: tempfile.TemporaryDirectory | None = None
_tmp_src: tempfile.TemporaryDirectory | None = None


def notebook_files() -> list[Path]:
    """The gallery's notebooks, in order (``notebooks/NN_*.py``)."""
    return sorted(NOTEBOOKS.glob(NOTEBOOK_GLOB))


def on_config(config):
    global _tmp_out
    os.environ.setdefault("GLTHEORY_NB_SMALL", "1")
    if not os.environ.get("GLTHEORY_NB_OUT"):
        _tmp_out = tempfile.TemporaryDirectory(prefix="gltheory-docs-nb-")
        os.environ["GLTHEORY_NB_OUT"] = _tmp_out.name
    path = os.environ.get("PYTHONPATH", "")
    if str(NOTEBOOKS) not in path.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(NOTEBOOKS), path) if p)
    if os.environ.get("MPLBACKEND", "").lower() in ("agg", "pdf", "svg", "ps", "cairo"):
        del os.environ["MPLBACKEND"]
    return config


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns them into pages
def on_files(files: Files, config) -> Files:
    # A copy in a temporary folder that mirrors the docs layout (``examples/NN_*.py``): the
    # page's source path must be ``src_dir/src_uri`` for mkdocs-jupyter's file wrapper.
    global _tmp_src
    _tmp_src = tempfile.TemporaryDirectory(prefix="gltheory-docs-src-")
    (Path(_tmp_src.name) / EXAMPLES_DIR).mkdir()
    for nb in notebook_files():
        shutil.copy2(nb, Path(_tmp_src.name) / EXAMPLES_DIR / nb.name)
        files.append(
            File(
                f"{EXAMPLES_DIR}/{nb.name}",
                src_dir=_tmp_src.name,
                dest_dir=config.site_dir,
                use_directory_urls=config.use_directory_urls,
            )
        )
    # the figures that benchmarks/README.md embeds (``figures/<name>.png``): the benchmarks page
    # includes that file, so the same relative links must resolve next to it on the site
    for fig in sorted((ROOT / "benchmarks" / "figures").glob("*.png")):
        files.append(
            File(
                f"figures/{fig.name}",
                src_dir=str(ROOT / "benchmarks"),
                dest_dir=config.site_dir,
                use_directory_urls=config.use_directory_urls,
            )
        )
    return files


_MATHJAX = re.compile(r"<!-- Load mathjax -->\s*<script[^>]*>\s*</script>", re.I)
_MATHJAX_CONFIG = re.compile(
    r"<!-- MathJax configuration -->.*?<!-- End of mathjax configuration -->", re.S
)
_MERMAID = re.compile(r"<script type=\"module\">(?:(?!</script>).)*?mermaid.*?</script>", re.S)
_CDN_SCRIPT = re.compile(r"<script[^>]*\bsrc=\"(?:https?:)?//[^\"]*\"[^>]*>\s*</script>", re.I)


_THEORY_REF = re.compile(r"<code>docs/theory/([\w-]+)\.md(#[\w-]+)?</code>")


def link_theory_refs(html: str, page_url: str, files: Files) -> str:
    """Make each code span ``docs/theory/<page>.md#<anchor>`` a link to that chapter section.

    That is the one form in which the code, the notebooks and the report cite the theory;
    on the site (API pages, notebooks) it becomes a link with class ``gl-theory-ref``, which
    ``docs/check_site.py`` resolves (page and anchor).
    """

    def link(m: re.Match) -> str:
        target = files.get_file_from_path(f"theory/{m.group(1)}.md")
        if target is None:
            return m.group(0)
        href = get_relative_url(target.url, page_url) + (m.group(2) or "")
        return f'<a class="gl-theory-ref" href="{href}">{m.group(0)}</a>'

    return _THEORY_REF.sub(link, html)


def on_page_content(html: str, page, config, files) -> str:
    if page.file.src_uri.startswith(f"{EXAMPLES_DIR}/") and page.file.src_uri.endswith(".py"):
        html = _MATHJAX.sub("", html)
        html = _MATHJAX_CONFIG.sub("", html)
        html = _MERMAID.sub("", html)
        html = _CDN_SCRIPT.sub("", html)
    return link_theory_refs(html, page.url, files)


def _report_path() -> Path | None:
    env = os.environ.get("GLTHEORY_REPORT_JSON")
    path = Path(env) if env else ROOT / "gltheory-report" / "report.json"
    return path if path.is_file() else None


def report_table_markdown(path: Path) -> str:
    """The table of the report at ``path`` as Markdown (a fenced block, as the CLI prints it)."""
    from gltheory.report import Row, format_table

    obj = json.loads(path.read_text(encoding="utf-8"))
    rows = [Row.from_dict(r) for r in obj["rows"]]
    n_off = sum(not r.ok for r in rows)
    env = obj.get("environment", {})
    when = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    head = (
        f"Rendered at build time from a `report.json` written {when:%Y-%m-%d %H:%M} UTC: "
        f"{len(rows)} rows, {n_off} off, status **{obj.get('status', '?')}** (gltheory "
        f"{env.get('gltheory', '?')}, jax {env.get('jax', '?')}, backend "
        f"{env.get('backend', '?')}).\n\n"
    )
    return head + "```text\n" + format_table(rows) + "\n```\n"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if REPORT_MARKER not in markdown:
        return markdown
    path = _report_path()
    if path is None:
        text = (
            '!!! note "No report in this build"\n'
            "    This copy of the site was built without a `report.json`. Run "
            "`gltheory report` (it writes `gltheory-report/report.json`) and build the site "
            "again, or point `GLTHEORY_REPORT_JSON` at a `report.json`.\n"
        )
    else:
        text = report_table_markdown(path)
    return markdown.replace(REPORT_MARKER, text)
