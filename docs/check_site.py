"""Checks of a built site (run by docs/build.sh after `mkdocs build --strict`).

    python docs/check_site.py [SITE_DIR]

1. **Offline.** No page loads a script, stylesheet, font or frame from another host (no CDN):
   every ``<script src>``, ``<link href>`` (stylesheets, preloads, icons), ``<iframe src>`` and
   every CSS ``url(...)``/``@import`` must be relative.
2. **API.** Every public name of every public module of gltheory (``public_names()``) has an
   entry in the API pages: an element with ``id="<module>.<name>"`` for the module that
   exports it or for the module where the same object is documented.
3. **Math.** The KaTeX files the pages reference are in the site.
4. **Theory links.** Every ``docs/theory/<page>.md#<anchor>`` citation that the build turned
   into a link (API pages, notebooks) leads to an existing page and anchor.

Also imported by ``tests/test_docs.py``, which checks the API pages' sources without a build.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def public_modules() -> tuple[str, ...]:
    """Every importable module of gltheory whose dotted path has no ``_``-prefixed part."""
    import gltheory

    names = ["gltheory"]
    for info in pkgutil.walk_packages(gltheory.__path__, "gltheory."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        names.append(info.name)
    return tuple(sorted(names))


def public_names(module_name: str) -> dict[str, object]:
    """The public names of a module and their objects.

    ``__all__`` where the module has one; otherwise the names without a leading underscore
    that are gltheory modules or objects defined in gltheory. Dunders (``__version__``) are
    left out.
    """
    mod = importlib.import_module(module_name)
    names = getattr(mod, "__all__", None)
    if names is None:
        names = []
        for n in dir(mod):
            if n.startswith("_"):
                continue
            obj = getattr(mod, n)
            where = (
                obj.__name__
                if isinstance(obj, types.ModuleType)
                else getattr(obj, "__module__", "")
            )
            if isinstance(where, str) and where.startswith("gltheory"):
                names.append(n)
    return {n: getattr(mod, n) for n in names if not n.startswith("__")}


def documented_as(module_name: str, name: str, candidates: set[str]) -> str | None:
    """The documented path (``module.name`` in ``candidates``) of ``module_name.name``, if any.

    A name is documented where it is exported, or under any public module that exports the
    same object under the same name (a re-export), or, for a module object, by its own page.
    """
    obj = getattr(importlib.import_module(module_name), name)
    direct = f"{module_name}.{name}"
    if direct in candidates:
        return direct
    if isinstance(obj, types.ModuleType):
        return obj.__name__ if obj.__name__ in candidates else None
    for other in public_modules():
        mod = importlib.import_module(other)
        if name in getattr(mod, "__all__", ()) and getattr(mod, name) is obj:
            path = f"{other}.{name}"
            if path in candidates:
                return path
    return None


_EXTERNAL = re.compile(
    r"<(?:script|img|iframe|source)\b[^>]*\bsrc=[\"'](?:https?:)?//[^\"']*[\"']"
    r"|<link\b[^>]*\bhref=[\"'](?:https?:)?//[^\"']*[\"']"
    r"|<script\b[^>]*\bsrc=[\"'][\"']"  # an empty src loads the page itself as a script
    r"|\bimport\(\s*[\"'](?:https?:)?//[^\"']*[\"']",  # a dynamic import from a CDN
    re.I,
)
_CSS_EXTERNAL = re.compile(r"(?:url\(\s*[\"']?|@import\s+[\"'])(?:https?:)?//", re.I)


def check_offline(site: Path) -> list[str]:
    problems = []
    for path in sorted(site.rglob("*.html")):
        for m in _EXTERNAL.finditer(path.read_text(encoding="utf-8", errors="replace")):
            problems.append(f"{path.relative_to(site)}: external resource {m.group(0)[:120]}")
    for path in sorted(site.rglob("*.css")):
        for m in _CSS_EXTERNAL.finditer(path.read_text(encoding="utf-8", errors="replace")):
            problems.append(f"{path.relative_to(site)}: external url {m.group(0)}")
    return problems


def check_api(site: Path) -> list[str]:
    ids: set[str] = set()
    for path in (site / "api").rglob("*.html"):
        ids.update(re.findall(r"\bid=\"(gltheory[\w.]*)\"", path.read_text(encoding="utf-8")))
    problems = []
    for module_name in public_modules():
        if module_name not in ids:
            problems.append(f"module {module_name} has no entry in the API pages")
        for name in public_names(module_name):
            if documented_as(module_name, name, ids) is None:
                problems.append(f"{module_name}.{name} has no entry in the API pages")
    return problems


_REF = re.compile(r'<a class="gl-theory-ref" href="([^"#]*)(?:#([^"]*))?"')


def check_theory_refs(site: Path) -> list[str]:
    """Every ``docs/theory/<page>.md#<anchor>`` link the hook made leads to a page and id."""
    problems, ids = [], {}
    for path in sorted(site.rglob("*.html")):
        for href, anchor in _REF.findall(path.read_text(encoding="utf-8", errors="replace")):
            target = (path.parent / href).resolve()
            target = target / "index.html" if target.is_dir() else target
            if not target.is_file():
                problems.append(f"{path.relative_to(site)}: theory link to missing {href}")
                continue
            if target not in ids:
                ids[target] = set(re.findall(r'\bid="([^"]+)"', target.read_text(encoding="utf-8")))
            if anchor and anchor not in ids[target]:
                problems.append(f"{path.relative_to(site)}: no anchor #{anchor} in {href}")
    return problems


def check_katex(site: Path) -> list[str]:
    need = [
        "assets/katex/katex.min.js",
        "assets/katex/katex.min.css",
        "assets/katex/contrib/auto-render.min.js",
        "assets/javascripts/katex-init.js",
    ]
    problems = [f"missing {p}" for p in need if not (site / p).is_file()]
    css = site / "assets/katex/katex.min.css"
    if css.is_file():
        fonts = set(re.findall(r"url\((fonts/[^)]+\.woff2)\)", css.read_text(encoding="utf-8")))
        problems += [
            f"missing KaTeX font {f}" for f in sorted(fonts) if not (css.parent / f).is_file()
        ]
    return problems


def main(argv: list[str]) -> int:
    site = Path(argv[1] if len(argv) > 1 else ROOT / "site")
    problems = check_offline(site) + check_api(site) + check_katex(site) + check_theory_refs(site)
    for p in problems:
        print(p, file=sys.stderr)
    n_pages = len(list(site.rglob("*.html")))
    print(f"check_site: {n_pages} pages, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
