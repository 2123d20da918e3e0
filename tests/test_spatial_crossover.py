"""The crossover of the frozen-time transition with the noise temperature T (issue 18 item 4).

Fast tests of the recorded study ``scripts/spatial_crossover.json``
(`docs/theory/lattice-exponents.md#crossover`): the analysis is recomputed from the recorded
points (crossings, exponents, small-T law, re-referenced effective exponents), the qualitative
claims of the docs are checked with their standard errors, and the docs' table quotes the
recorded numbers. Skipped when the JSON (or its analysis) is missing, or is a quick run.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from gltheory import spatial as sp

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "scripts" / "spatial_crossover.json"
SCRIPT = ROOT / "scripts" / "spatial_crossover.py"
DOC = ROOT / "docs" / "theory" / "lattice-exponents.md"
MF = sp.UNIVERSALITY_CLASSES["mean_field"]
ISING = sp.UNIVERSALITY_CLASSES["2d_ising"]


def _load():
    if not STUDY.exists():
        pytest.skip("the recorded study scripts/spatial_crossover.json")
    rec = json.loads(STUDY.read_text())
    if rec.get("quick") or "analysis" not in rec:
        pytest.skip("the recorded study is a quick run or has no analysis")
    return rec


@pytest.fixture(scope="module")
def study():
    return _load()


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("spatial_crossover", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _table(study):
    return sorted(study["analysis"]["table"], key=lambda r: r["T"])


def _z(a, a_se, b, b_se):
    return (a - b) / math.hypot(a_se, b_se)


def test_crossings_and_exponents_are_reproduced_from_the_points(study, script):
    """G*, U*, gamma/nu, beta/nu recomputed from the recorded points by the stated rule."""
    for row in _table(study):
        if row["source"].startswith("spatial_fss"):
            continue
        pts = study["temperatures"][f"{row['T']:g}"]["points"]
        again = script._fss_pair(pts)
        for name in ("G_star", "G_star_se", "binder_star", "binder_star_se"):
            assert again[name] == pytest.approx(row[name], rel=1e-9), (row["T"], name)
        for name in ("gamma_over_nu", "beta_over_nu"):
            assert again[name]["value"] == pytest.approx(row[name]["value"], rel=1e-9)
            assert again[name]["se"] == pytest.approx(row[name]["se"], rel=1e-9)


def test_crossing_is_where_the_fitted_binder_curves_meet(study):
    """At the recorded G*, the two sizes' quadratics through the three fitted points agree, and
    the crossing lies inside the fit window; the linear-interpolation crossing agrees within
    3 combined SE."""
    for row in _table(study):
        G = np.array(row["G"])
        lo, hi = row["fit_window"]
        sel = (G >= lo - 1e-9) & (G <= hi + 1e-9)
        assert sel.sum() == 3
        vals = [
            np.polyval(np.polyfit(G[sel], np.array(u)[sel], 2), row["G_star"])
            for u in row["binder"]
        ]
        assert vals[0] == pytest.approx(vals[1], abs=1e-6)
        assert vals[0] == pytest.approx(row["binder_star"], abs=1e-6)
        assert lo <= row["G_star"] <= hi
        assert (
            abs(_z(row["G_star"], row["G_star_se"], row["G_star_linear"], row["G_star_linear_se"]))
            < 3
        )


def test_G_star_rises_with_T_and_tends_to_one(study):
    """G*(T) increases with T; at the smallest T it is within 3 % of the linear instability
    G = 1, at T = 1 far beyond it; between the two smallest T, (G* - 1)/T grows with ln(1/T)
    at the one-loop (Hartree) slope B within 3 SE."""
    rows = _table(study)
    g = [r["G_star"] for r in rows]
    se = [r["G_star_se"] for r in rows]
    for i in range(len(rows) - 1):
        assert _z(g[i + 1], se[i + 1], g[i], se[i]) > 3, (rows[i]["T"], rows[i + 1]["T"])
    assert rows[0]["T"] <= 1e-3 and 0 < g[0] - 1 < 0.03
    assert rows[-1]["T"] == 1.0 and g[-1] > 6
    law = study["analysis"]["small_T_law"]
    first = law["pair_slopes"][0]
    assert first["T"] == [rows[0]["T"], rows[1]["T"]]
    assert first["slope"] > 0
    assert abs(first["slope"] - law["B_hartree"]) < 3 * first["se"]


def test_binder_crossing_moves_from_the_mean_field_side_to_ising(study):
    """U* at the smallest crossover variable x = (L/k) sqrt(T) is below U*(T = 1) by more than
    3 SE and equals the one-loop uniform-mode value (the mean-field side, with the logarithmic
    mass shift of D = 2) within 3 SE; for x >= 1.6 U* is the 2-D Ising value within 3 SE."""
    rows = _table(study)
    lo, hi = rows[0], rows[-1]
    assert lo["crossover_variable"][0] < 0.34  # below the one-loop x_c
    assert _z(hi["binder_star"], hi["binder_star_se"], lo["binder_star"], lo["binder_star_se"]) > 3
    one_loop = lo["zero_mode_one_loop"]["binder_star"]
    assert MF["binder_star"] < one_loop < ISING["binder_star"]
    assert abs(lo["binder_star"] - one_loop) < 3 * lo["binder_star_se"]
    for r in rows:
        if r["crossover_variable"][0] >= 1.6:
            assert abs(r["binder_star"] - ISING["binder_star"]) < 3 * r["binder_star_se"], r["T"]


def test_zero_mode_crossing_is_curie_weiss_at_zero_x(script):
    assert script.zero_mode_binder(0.0) == pytest.approx(MF["binder_star"], abs=1e-4)
    u = [script.zero_mode_crossing(x)["binder_star"] for x in (0.0, 0.1, 0.3, 1.0)]
    assert np.all(np.diff(u) > 0) and u[-1] < 2 / 3


def test_gamma_over_nu_moves_from_mean_field_to_ising(study):
    """The small-x weighted mean of gamma/nu is more than 3 SE below 7/4 and within 3 SE of 1;
    for x >= 0.8 each gamma/nu and beta/nu is 2-D Ising within 3 SE."""
    small = study["analysis"]["small_x"]
    g = small["gamma_over_nu"]
    assert g["value"] < ISING["gamma_over_nu"] - 3 * g["se"]
    assert abs(g["value"] - MF["gamma_over_nu"]) < 3 * g["se"]
    rows = [r for r in _table(study) if r["T"] in small["T"]]
    w = np.array([1 / r["gamma_over_nu"]["se"] ** 2 for r in rows])
    v = np.array([r["gamma_over_nu"]["value"] for r in rows])
    assert g["value"] == pytest.approx(float(np.sum(w * v) / np.sum(w)), rel=1e-12)
    for r in _table(study):
        if r["crossover_variable"][0] >= 0.8:
            for name in ("gamma_over_nu", "beta_over_nu"):
                e = r[name]
                assert abs(e["value"] - ISING[name]) < 3 * e["se"], (r["T"], name)


def test_small_T_law_is_the_stated_fit(study, script):
    again = script._gstar_small_T(_table(study))
    law = study["analysis"]["small_T_law"]
    assert again["A"] == pytest.approx(law["A"], rel=1e-9)
    assert again["A_se"] == pytest.approx(law["A_se"], rel=1e-9)
    assert law["B_hartree"] == pytest.approx(6 / (math.pi * (1 - 1 / 9)), rel=1e-12)


def test_effective_exponents_are_mean_field_far_from_the_crossover(study, script):
    """Re-referenced to G*(T): at eps/Gi >= 10 (T <= 1e-3) the chord exponents are the
    mean-field gamma = 1 and nu = 1/2 within 3 SE; at T = 1e-2 (eps/Gi of a few) the chord
    gamma is above 1 by more than 3 SE; the recorded local values are reproduced."""
    rows = study["analysis"]["effective_exponents"]
    again = script._reference(_table(study), study["analysis"]["small_T_law"])
    assert [r["source"] for r in rows] == [a["source"] for a in again]
    for r, a in zip(rows, again):
        for name in ("gamma_eff", "nu_eff", "gamma_eff_se", "nu_eff_se"):
            if name in r:
                np.testing.assert_allclose(a[name], r[name], rtol=1e-9)
    small = [r for r in rows if r["T"] <= 1e-3]
    assert len(small) == 2
    for r in small:
        assert min(r["eps_mid_over_gi"]) >= 10
        assert abs(r["gamma_eff_chord"] - 1) < 3 * r["gamma_eff_chord_se"]
        assert abs(r["nu_eff_chord"] - 0.5) < 3 * r["nu_eff_chord_se"]
    (mid,) = [r for r in rows if r["T"] == 1e-2]
    assert max(mid["eps_mid_over_gi"]) < 10
    assert mid["gamma_eff_chord"] - 1 > 3 * mid["gamma_eff_chord_se"]


def test_docs_quote_the_recorded_numbers(study):
    text = DOC.read_text()
    for row in _table(study):
        for name in ("G_star", "binder_star"):
            s = f"{row[name]:.3f}\\pm{row[name + '_se']:.3f}"
            assert s in text, s
        for name in ("gamma_over_nu", "beta_over_nu"):
            e = row[name]
            s = f"{e['value']:.2f}\\pm{e['se']:.2f}"
            assert s in text, s
    for r in study["analysis"]["effective_exponents"]:
        for name in ("gamma_eff_chord", "nu_eff_chord"):
            if name in r:
                s = f"{r[name]:.3f}\\pm{r[name + '_se']:.3f}"
                assert s in text, s
