#!/usr/bin/env bash
# Build the documentation site into site/ (or $1) and check it:
#   bash docs/build.sh [SITE_DIR]
# = mkdocs build --strict (executes the seven notebooks at the small size: a few minutes on
# 2 CPU cores), then docs/check_site.py (no CDN / external script or stylesheet; every public
# name has an entry in the API pages). Needs the `docs` extra: pip install -e ".[docs]".
# Faster iteration without executing the notebooks: GLTHEORY_DOCS_EXECUTE=false bash docs/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
site="${1:-site}"
py="${PYTHON:-.venv/bin/python}"
export NO_MKDOCS_2_WARNING=1
start=$(date +%s)
"$py" -m mkdocs build --strict --clean --site-dir "$site"
"$py" docs/check_site.py "$site"
echo "docs built and checked in $(( $(date +%s) - start )) s -> $site/"
