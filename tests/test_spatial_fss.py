"""Finite-size-scaling analysis of the patch lattice (`gltheory.spatial`, its last section).

Fast tests: the analysis functions on synthetic curves with known crossings and exponents, whose
values and standard errors follow in closed form; the recorded study (scripts/spatial_fss.json):
its k-collapse re-analysed and the figures the docs quote from it. Slow: a small real-lattice
scan through the same functions, and the whole recorded analysis reproduced.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gltheory import spatial as sp

ISING = sp.UNIVERSALITY_CLASSES["2d_ising"]
MF = sp.UNIVERSALITY_CLASSES["mean_field"]
STUDY = Path(__file__).resolve().parents[1] / "scripts" / "spatial_fss.json"

G_GRID = np.linspace(6.0, 7.6, 5)
SIZES = np.array([4.0, 8.0, 16.0])


def _synthetic(nu=1.0, gamma_over_nu=1.75, beta_over_nu=0.125, u_star=0.6107, g_c=6.7):
    """Exact FSS curves: U = U* + 0.05 x, ln chi = (g/nu) ln L + 0.3 x - 0.05 x^2,
    ln |M| = -(b/nu) ln L + 0.2 x, with x = (G - G_c) L^(1/nu)."""
    x = (G_GRID[None] - g_c) * SIZES[:, None] ** (1 / nu)
    u = u_star + 0.05 * x
    chi = SIZES[:, None] ** gamma_over_nu * np.exp(0.3 * x - 0.05 * x**2)
    m = SIZES[:, None] ** (-beta_over_nu) * np.exp(0.2 * x)
    return u, chi, m


def test_binder_crossings_of_exact_curves_are_the_critical_point():
    u, _, _ = _synthetic(u_star=0.6, g_c=6.7)
    cr = sp.lattice_binder_crossings(G_GRID, u, np.zeros_like(u), SIZES)
    np.testing.assert_allclose(cr.G_star, [6.7, 6.7], atol=1e-9)
    np.testing.assert_allclose(cr.binder_star, [0.6, 0.6], atol=1e-9)
    assert np.all(np.isnan(cr.G_star_linear))  # the linear cross-check only on request
    np.testing.assert_array_equal(cr.size_small, [4.0, 8.0])
    np.testing.assert_array_equal(cr.size_large, [8.0, 16.0])


def test_sizes_measured_on_part_of_the_grid_are_fitted_on_their_own_points():
    u, chi, _ = _synthetic(u_star=0.6, g_c=6.7)
    u[2, [0, 4]] = np.nan  # the largest size measured at 6.4, 6.8, 7.2 only
    chi[2, [0, 4]] = np.nan
    zero = np.where(np.isnan(u), np.nan, 0.0)
    cr = sp.lattice_binder_crossings(G_GRID, u, zero, SIZES)
    np.testing.assert_allclose(cr.G_star, [6.7, 6.7], atol=1e-9)
    g = sp.fss_exponent(G_GRID, chi, zero, SIZES, 6.7)
    assert g.exponent == pytest.approx(1.75, abs=1e-8)
    with pytest.raises(ValueError, match="G_star"):  # outside the largest size's points
        sp.fss_exponent(G_GRID, chi, zero, SIZES, 6.2)


def test_binder_crossing_errors_are_the_closed_form_of_two_straight_lines():
    # U_i = U* + a_i (G - G_c), equal SE s at n points, degree 1: the fitted value at G has
    # variance s^2 (1/n + (G - mean G)^2 / Sxx); var G* = (var_1 + var_2) / (a_1 - a_2)^2 and
    # var U* = (a_2 / d)^2 var_1 + (a_1 / d)^2 var_2 with d = a_1 - a_2.
    a = np.array([0.2, 0.5])
    g_c, u_star, s = 6.5, 0.55, 0.01
    u = u_star + a[:, None] * (G_GRID[None] - g_c)
    cr = sp.lattice_binder_crossings(G_GRID, u, np.full_like(u, s), SIZES[:2], degree=1)
    n, gbar = G_GRID.size, G_GRID.mean()
    var = s**2 * (1 / n + (g_c - gbar) ** 2 / np.sum((G_GRID - gbar) ** 2))
    d = a[0] - a[1]
    assert cr.G_star[0] == pytest.approx(g_c, abs=1e-12)
    assert cr.G_star_se[0] == pytest.approx(math.sqrt(2 * var) / abs(d), rel=1e-9)
    assert cr.binder_star_se[0] == pytest.approx(
        math.sqrt((a[1] / d) ** 2 * var + (a[0] / d) ** 2 * var), rel=1e-9
    )


def test_curves_that_do_not_cross_give_nan():
    u = np.stack([0.5 + 0.01 * G_GRID, 0.3 + 0.01 * G_GRID])
    cr = sp.lattice_binder_crossings(G_GRID, u, np.full_like(u, 0.01), SIZES[:2])
    assert np.isnan(cr.G_star[0]) and np.isnan(cr.binder_star[0])


def test_exponents_of_exact_curves_are_recovered():
    u, chi, m = _synthetic(nu=0.8, gamma_over_nu=1.6, beta_over_nu=0.2, g_c=6.7)
    zero = np.zeros_like(u)
    inv_nu = sp.fss_exponent(G_GRID, u, zero, SIZES, 6.7, derivative=True)
    assert inv_nu.exponent == pytest.approx(1 / 0.8, abs=1e-8)
    np.testing.assert_allclose(inv_nu.pairwise, [1.25, 1.25], atol=1e-8)
    # the binder slope 0.05 L^(1/nu) at the critical point
    np.testing.assert_allclose(inv_nu.values, 0.05 * SIZES**1.25, rtol=1e-8)
    g = sp.fss_exponent(G_GRID, chi, zero, SIZES, 6.7)
    assert g.exponent == pytest.approx(1.6, abs=1e-8)
    np.testing.assert_allclose(g.values, SIZES**1.6, rtol=1e-8)
    b = sp.fss_exponent(G_GRID, m, zero, SIZES, 6.7)
    assert b.exponent == pytest.approx(-0.2, abs=1e-8)
    assert b.exponent_se_G == 0.0


def test_exponent_error_is_the_closed_form_for_two_sizes_at_the_grid_centre():
    # degree 1 in ln y, relative SE r at n points, evaluated at the mean of G: the fitted
    # ln y has variance r^2 / n per size, so the two-size slope has SE sqrt(2 r^2 / n) / ln 2.
    r = 0.03
    y = np.stack([np.full(G_GRID.size, 2.0), np.full(G_GRID.size, 2.0 * 2**1.75)])
    fit = sp.fss_exponent(G_GRID, y, r * y, SIZES[:2], float(G_GRID.mean()), degree=1)
    assert fit.exponent == pytest.approx(1.75, abs=1e-12)
    assert fit.exponent_se_stat == pytest.approx(math.sqrt(2 * r**2 / G_GRID.size) / math.log(2))
    assert math.isnan(fit.chi2_dof)


def test_exponent_error_includes_the_uncertainty_of_G_star():
    # y_L = L^x exp(c (G - G0) L): x(G) = x + c (G - G0) L-weighted, so x moves with G*
    c = 0.1
    y = SIZES[:, None] ** 1.0 * np.exp(c * (G_GRID[None] - 6.8) * SIZES[:, None])
    fit = sp.fss_exponent(G_GRID, y, np.zeros_like(y), SIZES, 6.8, 0.2)
    # ln y_L(G) = ln L + c (G - 6.8) L: the log-log slope of c L in ln L over L = 4, 8, 16
    ll = np.log(SIZES)
    slope_of_l = np.polyfit(ll, SIZES, 1)[0]
    assert fit.exponent == pytest.approx(1.0, abs=1e-8)
    assert fit.exponent_se_G == pytest.approx(c * 0.2 * slope_of_l, rel=1e-6)


def test_k_collapse_is_the_chi2_test_of_a_common_value():
    kc = sp.k_collapse(np.array([0.20, 0.23]), np.array([0.01, 0.02]))
    chi2 = 0.03**2 / (0.01**2 + 0.02**2)
    assert kc.chi2 == pytest.approx(chi2)
    assert kc.dof == 1
    assert kc.p_value == pytest.approx(math.erfc(math.sqrt(chi2 / 2)))
    assert kc.max_pair_z == pytest.approx(math.sqrt(chi2))
    assert kc.mean == pytest.approx((0.20 / 1e-4 + 0.23 / 4e-4) / (1 / 1e-4 + 1 / 4e-4))
    kc3 = sp.k_collapse(np.array([1.0, 1.1, 0.9]), np.array([0.1, 0.1, 0.1]))
    assert kc3.p_value == pytest.approx(math.exp(-kc3.chi2 / 2))  # 2 dof: e^(-chi2/2)


@pytest.mark.parametrize(
    "name, truth, expected",
    [("2d_ising", ISING, "2d_ising"), ("mean_field", MF, "mean_field")],
)
def test_verdict_selects_the_class_the_estimates_come_from(name, truth, expected):
    est = {n: (v + 0.01, 0.02) for n, v in truth.items()}
    v = sp.universality_verdict(est)
    assert v.verdict == expected
    assert v.compatible == [name]
    assert v.z[name]["nu"] == pytest.approx(0.5)
    other = "mean_field" if name == "2d_ising" else "2d_ising"
    assert v.max_abs_z[other] > 3
    assert name in v.confidence and "excluded" in v.confidence


def test_verdict_is_undecided_or_neither_when_it_should_be():
    wide = {n: (v, 1.0) for n, v in ISING.items()}
    assert sp.universality_verdict(wide).verdict == "undecided"
    off = {"gamma_over_nu": (3.0, 0.01)}
    v = sp.universality_verdict(off)
    assert v.verdict == "neither"
    assert v.z["2d_ising"]["gamma_over_nu"] == pytest.approx((3.0 - 1.75) / 0.01)
    assert v.p_value["2d_ising"] < 1e-10


def _points(u, chi, m, k=3, D=2, sizes=SIZES, grid=G_GRID, rel=0.01):
    pts = []
    for i, c in enumerate(sizes):
        for j, g in enumerate(grid):
            pts.append(
                dict(D=D, k=k, cells=int(c), G=float(g), start="ordered",
                     binder=u[i, j], binder_se=0.002, chi=chi[i, j], chi_se=rel * chi[i, j],
                     chi_full=chi[i, j], chi_full_se=rel * chi[i, j],
                     m_abs=m[i, j], m_abs_se=rel * m[i, j])
            )  # fmt: skip
    return pts


def test_fss_analysis_of_synthetic_ising_curves():
    u, chi, m = _synthetic()
    pts = _points(u, chi, m)
    # a second window at two (G, L/k) and a disordered start: the collapse and start rows
    pts += [dict(p, k=5, m_abs=p["m_abs"] * 3 / 5) for p in pts if p["cells"] == 4]
    pts.append(dict(pts[2], start="disordered", binder=pts[2]["binder"] - 0.002))
    out = sp.fss_analysis(pts, linear=False)
    assert out["G_star"] == pytest.approx(6.7, abs=1e-6)
    assert out["binder_star"] == pytest.approx(0.6107, abs=1e-6)
    assert out["estimates"]["nu"][0] == pytest.approx(1.0, abs=1e-6)
    assert out["estimates"]["gamma_over_nu"][0] == pytest.approx(1.75, abs=1e-6)
    assert out["estimates"]["beta_over_nu"][0] == pytest.approx(0.125, abs=1e-6)
    assert out["verdict"]["verdict"] == "2d_ising"
    assert out["verdict_discriminating"]["estimates"] == [
        "beta_over_nu",
        "binder_star",
        "gamma_over_nu",
    ]
    assert out["verdict_discriminating"]["verdict"] == "2d_ising"
    assert len(out["k_collapse"]) == G_GRID.size
    row = out["k_collapse"][0]
    assert row["k"] == [3, 5] and row["m_abs"]["chi2"] == pytest.approx(0.0, abs=1e-12)
    (start,) = out["starts"]
    assert start["binder"]["z"] == pytest.approx(0.002 / math.hypot(0.002, 0.002))
    json.dumps(out)  # JSON-ready


def test_k_collapse_rows_fit_the_lattice_correction_and_the_coupling_shift():
    # windows 5 and 7 whose U is the k = 3 curve at a shifted coupling, G + d (1/9 - 1/k^2),
    # and whose chi is chi_inf + c / k^2: the analysis must return d's shifts, chi_inf and c
    u, chi, m = _synthetic()
    pts = _points(u, chi, m)
    d, c = 3.0, 20.0
    for kk in (5, 7):
        shift = d * (1 / 9 - 1 / kk**2)
        for p in pts[: 2 * G_GRID.size]:  # L/k = 4 and 8
            if p["k"] == 3 and p["G"] in (6.0, 6.8, 7.6):
                u_k = ISING["binder_star"] + 0.05 * (p["G"] + shift - 6.7) * p["cells"]
                chi_k = p["chi"] + c * (1 / kk**2 - 1 / 9)
                pts.append(dict(p, k=kk, binder=u_k, chi=chi_k, chi_se=0.01 * p["chi"]))
    out = sp.fss_analysis(pts, linear=False)
    rows = {(r["cells"], r["G"]): r for r in out["k_collapse"]}
    assert sorted(rows) == [(c_, g) for c_ in (4, 8) for g in (6.0, 6.8, 7.6)]
    for (cells, G), r in rows.items():
        assert r["k"] == [3, 5, 7]
        got = {s["k"]: s["shift"] for s in r["binder"]["coupling_shift"]["shifts"]}
        assert got[3] == pytest.approx(0.0, abs=1e-9)
        for kk in (5, 7):
            assert got[kk] == pytest.approx(d * (1 / 9 - 1 / kk**2), abs=1e-9)
        cont = r["chi"]["continuum"]
        chi3 = r["chi"]["values"][0]
        assert cont["value"] == pytest.approx(chi3 - c / 9, rel=1e-9)
        assert cont["slope"] == pytest.approx(c, rel=1e-9)
        assert cont["chi2"] == pytest.approx(0.0, abs=1e-9) and cont["dof"] == 1
        steps = r["chi"]["steps"]
        assert [s["k"] for s in steps] == [[3, 5], [5, 7]]
        assert steps[0]["diff"] == pytest.approx(c * (1 / 25 - 1 / 9), rel=1e-9)
    pooled = out["coupling_shift"]
    assert pooled["window"] == 3 and sorted(pooled["by_window"]) == [5, 7]
    assert pooled["by_window"][5]["n"] == 6 and pooled["by_window"][5]["chi2"] < 1e-12
    fit = pooled["inverse_k2_fit"]
    assert fit["d"] == pytest.approx(d, rel=1e-9) and fit["chi2"] < 1e-12
    assert fit["shift_continuum"] == pytest.approx(d / 9, rel=1e-9)
    # a value off the 1/k^2 line by 3 SE of itself gives chi^2 > 0 with 1 dof
    r = rows[(4, 6.8)]
    bad = [dict(p) for p in pts]
    for p in bad:
        if (p["k"], p["cells"], p["G"]) == (7, 4, 6.8):
            p["chi"] += 3 * p["chi_se"]
    out = sp.fss_analysis(bad, linear=False)
    cont = next(q for q in out["k_collapse"] if (q["cells"], q["G"]) == (4, 6.8))["chi"]
    assert 1.0 < cont["continuum"]["chi2"] < 9.0 and cont["continuum"]["p_value"] < 0.3


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sp.lattice_binder_crossings(G_GRID, np.zeros((2, 4)), np.zeros((2, 4)), SIZES[:2]), "binder"),
        (lambda: sp.lattice_binder_crossings(G_GRID[::-1], np.zeros((2, 5)), np.zeros((2, 5)), SIZES[:2]), "G"),
        (lambda: sp.lattice_binder_crossings(G_GRID, np.zeros((2, 5)), np.zeros((2, 5)), SIZES[1::-1]), "sizes"),
        (lambda: sp.lattice_binder_crossings(G_GRID, np.zeros((2, 5)), np.zeros((2, 5)), SIZES[:2], degree=0), "degree"),
        (lambda: sp.lattice_binder_crossings(G_GRID, np.zeros((2, 5)), np.zeros((2, 5)), SIZES[:2], G_range=(7.0, 6.0)), "G_range"),
        (lambda: sp.fss_exponent(G_GRID, np.ones((2, 5)), np.zeros((2, 5)), SIZES[:2], 9.0), "G_star"),
        (lambda: sp.fss_exponent(G_GRID, np.ones((2, 5)), np.zeros((2, 5)), SIZES[:2], 6.5, -1.0), "G_star_se"),
        (lambda: sp.fss_exponent(G_GRID, -np.ones((2, 5)), np.zeros((2, 5)), SIZES[:2], 6.5), "values"),
        (lambda: sp.k_collapse(np.ones(2), np.zeros(2)), "values_se"),
        (lambda: sp.universality_verdict({}), "estimates"),
        (lambda: sp.universality_verdict({"nu": (1.0, 0.0)}), "estimates"),
        (lambda: sp.universality_verdict({"nu": (1.0, 0.1)}, threshold=0), "threshold"),
        (lambda: sp.fss_analysis([{"D": 2}]), "points"),
    ],
)  # fmt: skip
def test_bad_inputs_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.slow
def test_small_real_lattice_binder_curves_cross_and_d1_does_not():
    """D = 2, k = 3, L/k in {2, 4}: the Binder curves cross between G = 5 and 8 (the larger
    lattice below at G = 5 and above at G = 8 by > 3 combined SE; measured -6.0 and 9.5);
    D = 1, L/k in {4, 8}: the larger lattice lies below (no crossing). 128 replicas, fixed
    seeds; errors: SE across replicas (jackknife for U)."""
    pts = []
    for D, cells_list, grid in ((2, (2, 4), (5.0, 6.5, 8.0)), (1, (4, 8), (3.0, 6.0, 9.0))):
        for cells in cells_list:
            for j, G in enumerate(grid):
                run = sp.lattice_langevin(
                    jax.random.fold_in(jax.random.key(18), 100 * D + 10 * cells + j),
                    G, window=3, cells=cells, lattice_ndim=D, n_replicas=128, n_burn=2000,
                    n_samples=100, thin=20, structure_factor=False, dtype=jnp.float32,
                )  # fmt: skip
                st = sp.lattice_statistics(run)
                pts.append(
                    dict(D=D, k=3, cells=cells, G=G, start="ordered", binder=st.binder,
                         binder_se=st.binder_se, chi=st.chi, chi_se=st.chi_se,
                         chi_full=st.n_sites * st.m2, chi_full_se=st.n_sites * st.m2_se,
                         m_abs=st.m_abs, m_abs_se=st.m_abs_se)
                )  # fmt: skip
    by = {(p["D"], p["cells"], p["G"]): p for p in pts}

    def z(D, small, large, G):
        a, b = by[(D, small, G)], by[(D, large, G)]
        return (b["binder"] - a["binder"]) / math.hypot(a["binder_se"], b["binder_se"])

    assert z(2, 2, 4, 5.0) < -3 and z(2, 2, 4, 8.0) > 3
    # D = 1: the larger lattice below by > 3 SE at G = 3 and 6 (measured -3.3, -4.2); at G = 9,
    # near the ordered plateau and not equilibrated from the ordered start, not above by 2 SE
    assert z(1, 4, 8, 3.0) < -3 and z(1, 4, 8, 6.0) < -3 and z(1, 4, 8, 9.0) < 2
    out = sp.fss_analysis(pts)
    assert 5.0 < out["crossings"][0]["G_star"] < 8.0
    # the linear-interpolation cross-check agrees within the combined errors
    c = out["crossings"][0]
    assert abs(c["G_star"] - c["G_star_linear"]) < 3 * math.hypot(
        c["G_star_se"], c["G_star_linear_se"]
    )
    assert out["crossings"][0]["G_star_se"] > 0
    assert out["control_d1"]["min_z_smaller_above_larger"] > -2


@pytest.mark.slow
@pytest.mark.skipif(not STUDY.exists(), reason="the recorded study scripts/spatial_fss.json")
def test_recorded_study_analysis_is_reproduced():
    rec = json.loads(STUDY.read_text())
    if rec.get("quick"):
        pytest.skip("the recorded study is a quick run")
    again = sp.fss_analysis(rec["points"])
    assert again["G_star"] == pytest.approx(rec["analysis"]["G_star"], rel=1e-9)
    assert again["verdict"]["verdict"] == rec["analysis"]["verdict"]["verdict"]
    for name, (v, se) in rec["analysis"]["estimates"].items():
        assert again["estimates"][name][0] == pytest.approx(v, rel=1e-9)
        assert again["estimates"][name][1] == pytest.approx(se, rel=1e-9)


def _recorded():
    if not STUDY.exists():
        pytest.skip("the recorded study scripts/spatial_fss.json")
    rec = json.loads(STUDY.read_text())
    if rec.get("quick"):
        pytest.skip("the recorded study is a quick run")
    return rec


def test_recorded_k_collapse_covers_l_over_k_4_and_8_and_is_reproduced():
    rec = _recorded()
    ana = rec["analysis"]
    rows = {(r["cells"], r["G"]): r for r in ana["k_collapse"]}
    for cells in (4, 8):  # every L/k with >= 2 windows, k = 3, 5, 7 at three G
        for G in (6.0, 6.8, 7.6):
            assert rows[(cells, G)]["k"] == [3, 5, 7]
    again = sp.fss_analysis(rec["points"], linear=False)
    assert len(again["k_collapse"]) == len(ana["k_collapse"])
    for r, q in zip(again["k_collapse"], ana["k_collapse"]):
        for n in ("binder", "chi", "m_abs"):
            for f in ("chi2", "max_pair_z", "max_rel_spread"):
                assert r[n][f] == pytest.approx(q[n][f], rel=1e-9)
            assert r[n]["continuum"]["value"] == pytest.approx(q[n]["continuum"]["value"], rel=1e-9)
    fit, fit_rec = (
        again["coupling_shift"]["inverse_k2_fit"],
        ana["coupling_shift"]["inverse_k2_fit"],
    )
    assert fit["shift_continuum"] == pytest.approx(fit_rec["shift_continuum"], rel=1e-9)
    # the k = 3 finite-size scaling is not changed by the new windows and starts
    assert ana["G_star"] == pytest.approx(6.8365, abs=1e-4)
    assert ana["estimates"]["gamma_over_nu"][0] == pytest.approx(1.7698, abs=1e-4)
    assert ana["verdict"]["verdict"] == "2d_ising"


def test_recorded_k_collapse_figures_quoted_in_the_docs():
    # docs/theory/spatial.md#universality-class, the k-collapse paragraphs
    ana = _recorded()["analysis"]
    rows = {(r["cells"], r["G"]): r for r in ana["k_collapse"]}

    def steps(cells, G, n):
        return [s["diff"] for s in rows[(cells, G)][n]["steps"]]

    # L/k = 4: the 5 -> 7 step is smaller than 3 -> 5 in U and k<|M|> at every G
    for G in (6.0, 6.8, 7.6):
        for n in ("binder", "m_abs"):
            s35, s57 = steps(4, G, n)
            assert abs(s57) < abs(s35)
    # L/k = 8: smaller at G = 6.8 and 7.6, not at 6.0 (both about 0.05 in U)
    for G in (6.8, 7.6):
        for n in ("binder", "m_abs"):
            s35, s57 = steps(8, G, n)
            assert abs(s57) < abs(s35)
    s35, s57 = steps(8, 6.0, "binder")
    assert s35 == pytest.approx(0.050, abs=5e-4) and s57 == pytest.approx(0.054, abs=5e-4)
    # the 1/k^2 line: chi^2 (1 dof) 0.5-1.6 at L/k = 4, 1.9-4.1 at L/k = 8 (L/k = 16 has two
    # windows, through which the line passes exactly)
    for (cells, _), r in rows.items():
        if cells == 16:
            continue
        for n in ("binder", "chi", "m_abs"):
            lo, hi = (0.45, 1.6) if cells == 4 else (1.85, 4.1)
            assert lo < r[n]["continuum"]["chi2"] < hi
    # the spread of U grows with L/k below and at G*, not deep in the ordered phase
    for G, (s4, s8) in {6.0: (0.057, 0.226), 6.8: (0.031, 0.041), 7.6: (0.012, 0.007)}.items():
        assert rows[(4, G)]["binder"]["max_rel_spread"] == pytest.approx(s4, abs=5e-4)
        assert rows[(8, G)]["binder"]["max_rel_spread"] == pytest.approx(s8, abs=5e-4)
    # L/k = 16 (k = 3, 5, 7 at G = 6.8): not a common value; the steps in U in the 1/k^2 ratio;
    # the spread over k does not shrink with L/k at G*
    r16 = rows[(16, 6.8)]
    assert r16["k"] == [3, 5, 7]
    for n, (chi2, z) in {"binder": (17.8, 4.0), "chi": (10.2, 2.9), "m_abs": (63.6, 7.9)}.items():
        assert r16[n]["chi2"] == pytest.approx(chi2, abs=0.05)
        assert r16[n]["max_pair_z"] == pytest.approx(z, abs=0.05)
    s35, s57 = steps(16, 6.8, "binder")
    assert s35 == pytest.approx(0.0225, abs=5e-5) and s57 == pytest.approx(0.0063, abs=5e-5)
    assert s57 / s35 == pytest.approx((1 / 25 - 1 / 49) / (1 / 9 - 1 / 25), abs=0.01)
    assert r16["binder"]["continuum"]["chi2"] < 0.01
    spread = [rows[(c, 6.8)]["binder"]["max_rel_spread"] for c in (4, 8, 16)]
    assert spread == pytest.approx([0.031, 0.041, 0.044], abs=5e-4)
    # the coupling shift: the same at L/k = 4 and 8, smaller at 16 (1.8 and 2.4 SE), 1/k^2
    # between the windows
    cs = ana["coupling_shift"]["by_window"]
    for kk, (v, se, z) in {"5": (0.140, 0.047, 1.8), "7": (0.192, 0.039, 2.4)}.items():
        b4, b16 = cs[kk]["by_cells"]["4"], cs[kk]["by_cells"]["16"]
        assert b16["shift"] == pytest.approx(v, abs=5e-4)
        assert b16["se"] == pytest.approx(se, abs=5e-4)
        dz = (b4["shift"] - b16["shift"]) / math.hypot(b4["se"], b16["se"])
        assert dz == pytest.approx(z, abs=0.05)
    for kk, (v, se) in {"5": (0.213, 0.025), "7": (0.259, 0.025)}.items():
        assert cs[kk]["shift"] == pytest.approx(v, abs=5e-4)
        assert cs[kk]["se"] == pytest.approx(se, abs=5e-4)
        b4, b8 = cs[kk]["by_cells"]["4"], cs[kk]["by_cells"]["8"]
        assert abs(b4["shift"] - b8["shift"]) < 2 * math.hypot(b4["se"], b8["se"])
    fit = ana["coupling_shift"]["inverse_k2_fit"]
    assert fit["shift_continuum"] == pytest.approx(0.323, abs=5e-4)
    assert fit["shift_continuum_se"] == pytest.approx(0.024, abs=5e-4)
    assert fit["chi2"] == pytest.approx(0.09, abs=0.005)


def test_recorded_l_over_k_16_starts_after_the_long_burn_in():
    rec = _recorded()
    (row,) = [s for s in rec["analysis"]["starts"] if s["cells"] == 16]
    assert row["binder"]["ordered"] == pytest.approx(0.628, abs=5e-4)
    assert row["binder"]["disordered"] == pytest.approx(0.600, abs=5e-4)
    assert row["binder"]["z"] == pytest.approx(1.9, abs=0.05)
    (dis,) = [
        p for p in rec["points"] if p["cells"] == 16 and p["k"] == 3 and p["start"] == "disordered"
    ]
    assert dis["n_burn"] == 250000 and dis["part"] == "E"
    old = [p for p in rec["superseded_points"] if p.get("superseded_by") == "E"]
    assert [p["n_burn"] for p in old] == [100000]
    # the start systematic: the analysis with the disordered point in place of the ordered one
    (sens,) = [s for s in rec["analysis_disordered_start"] if s["cells"] == 16]
    assert sens["G_star"] == pytest.approx(7.03, abs=5e-3)
    assert sens["verdict"] == "2d_ising"
