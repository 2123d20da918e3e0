"""The ``spatial_class`` report experiment (`docs/theory/spatial.md`).

Fast tier: the pattern-birth table against closed forms (OU: t = 1/2 ln(1 + k^2/G); VP, VE:
the inverse of ``G_of_time``), the size configurations and the registry; no sampler runs.
Slow tier: the experiment at ``--quick`` size at a fixed seed: every row present, the rows that
test the reduction and the linear instability ok, the exponent rows carrying standard errors.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest

from gltheory import spatial
from gltheory.experiments import by_name, spatial_class as sc
from gltheory.report import ReportConfig


def test_pattern_birth_table_closed_forms():
    tab = sc.pattern_birth_table(6.7, 0.2)
    assert [(r["process"], r["window"]) for r in tab] == [
        (p, k) for p in ("OU", "VP", "VE") for k in (3, 5, 7)
    ]
    for r in tab:
        proc, k = sc.PROCESSES[r["process"]](), r["window"]
        assert r["t_star"] < r["t_c_S"]  # patterns are born later in generation than t_c^S
        if r["process"] == "OU":
            assert r["t_star"] == pytest.approx(0.5 * math.log(1 + k**2 / 6.7), rel=1e-6)
            assert r["t_c_S"] == pytest.approx(0.5 * math.log(1 + k**2), rel=1e-6)
            # delta-method SE: |dt/dG| se with dt/dG = -k^2 / (2 G (G + k^2))
            slope = k**2 / (2 * 6.7 * (6.7 + k**2))
            assert r["t_star_se"] == pytest.approx(slope * 0.2, rel=1e-4)
        elif k == 5:  # VP, VE: the inverse of G_of_time
            G = spatial.G_of_time(
                proc, np.array([r["t_star"], r["t_c_S"]]), window=k, lattice_ndim=2
            )
            np.testing.assert_allclose(np.asarray(G), [6.7, 1.0], rtol=1e-5)


def test_sizes_and_registry():
    d, q = sc.SpatialClassConfig.default(), sc.SpatialClassConfig.quick()
    assert sc.SpatialClassConfig.of(ReportConfig(quick=True)) == q
    for c in (d, q):
        assert len(c.replicas) == len(c.n_burn) == len(c.cells) >= 2
        assert list(c.cells) == sorted(c.cells) and list(c.G) == sorted(c.G)
        assert len(c.G) >= c.degree + 1  # the polynomial rule needs degree + 1 points
        assert c.collapse_G in c.G or c.collapse_windows[0] != c.window
    assert len(q.G) <= len(d.G) and sum(q.replicas) <= sum(d.replicas)
    assert by_name("spatial_class").run is sc.spatial_class_experiment
    assert sc.STUDY["verdict"] in spatial.UNIVERSALITY_CLASSES
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.window = 5


def test_study_reference_is_the_recorded_study():
    """STUDY quotes scripts/spatial_fss.json (G* to 2 decimals, its SE, the verdict)."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "spatial_fss.json"
    if not path.exists():
        pytest.skip("scripts/spatial_fss.json is not in this tree (installed package)")
    ana = json.loads(path.read_text())["analysis"]
    assert sc.STUDY["G_star"] == pytest.approx(ana["G_star"], abs=0.005)
    assert sc.STUDY["G_star_se"] == pytest.approx(ana["G_star_se"], abs=0.005)
    assert sc.STUDY["verdict"] == ana["verdict"]["verdict"]


@pytest.mark.slow
def test_spatial_class_experiment_quick():
    """About 1 min of CPU at --quick size (measured wall: see the module's config)."""
    res = sc.spatial_class_experiment(ReportConfig(quick=True), jax.random.PRNGKey(0))
    by = {r.name: r for r in res.rows}
    assert "spatial_class.png" in res.figures
    assert len(res.rows) == 2 + 3 + 2 + 2 + 9 + 1
    assert all(r.group == "spatial_class" for r in res.rows)
    # the linear instability is not critical: U = 0 and chi independent of L within 3 SE
    assert by["Binder U at G=1 (t_c^S), k=3, L/k=8"].status == "ok"
    assert by["chi(L/k=8) / chi(L/k=4) at G=1 (t_c^S), k=3"].status == "ok"
    # the crossing exists and is far from the linear instability G = 1
    g = res.info["crossing"]
    assert np.isfinite(g["G_star"]) and g["G_star"] > 5 and 0 < g["G_star_se"] < 0.5
    assert 0.5 < g["binder_star"] < 0.66
    # every stochastic row carries a positive SE
    assert all(r.se > 0 for r in res.rows if r.tol is None)
    # the pattern-birth times: later in generation than t_c^S for every process and window
    for r in res.info["pattern_birth"]["this_scan"]:
        assert r["t_star"] < r["t_c_S"]
