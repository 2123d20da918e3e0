"""The ``exponents`` report experiment (`docs/theory/exponents.md`).

Fast tier: the row builder on given estimates (ok within 3 SE, off beyond, each family's jump
against its own Landau value), the size configurations and the universality figure on a
synthetic table; no sampler runs. Slow tier: the experiment at ``--quick`` size, every row ok at
the fixed seed.
"""

from __future__ import annotations

import dataclasses
import zlib

import jax
import numpy as np
import pytest

from gltheory import bath, exponents
from gltheory.experiments import exponents as exp
from gltheory.report import ReportConfig


def test_table_rows_against_mean_field():
    est = bath.Estimate
    measured = {
        "beta": est(0.503, 0.002),  # 1.5 SE: ok
        "gamma": est(1.2, 0.02),  # 10 SE: off
        "delta": est(3.0, 0.01),
        "jump": est(2.45, 0.02),  # against the family's own Landau 5/2: ok
        "rushbrooke": est(0.0, 0.03),
    }
    rows = exp.table_rows(measured, landau=2.5, label="sphere", notes={"beta": "how"})
    by = {r.name: r for r in rows}
    assert list(by) == [
        "beta, sphere",
        "gamma (fluctuations, eps < 0), sphere",
        "delta, sphere",
        "alpha: jump Delta C/N vs Landau, sphere",
        "Rushbrooke alpha + 2 beta + gamma - 2, sphere",
    ]
    assert [r.status for r in rows] == ["ok", "off", "ok", "ok", "ok"]
    assert by["beta, sphere"].theory == 0.5 and by["beta, sphere"].note == "how"
    assert by["alpha: jump Delta C/N vs Landau, sphere"].theory == 2.5
    assert all(r.se is not None and r.tol is None and r.group == "exponents" for r in rows)
    # the same jump against the +-mu value 3/2 is off: the jump is not universal
    (row,) = exp.table_rows({"jump": est(2.45, 0.02)}, landau=1.5)
    assert row.status == "off"


def test_sizes():
    d, q = exp.ExponentsConfig.default(), exp.ExponentsConfig.quick()
    assert exp.ExponentsConfig.of(ReportConfig(quick=True)) == q
    for f in ("n_chains", "n_steps", "fss_chains", "uni_chains", "uni_steps"):
        assert getattr(q, f) <= getattr(d, f), f
    assert max(q.fss_sizes) <= max(d.fss_sizes) and max(d.fss_sizes) >= 1e6
    assert d.families == q.families and len(d.families) == 5
    # the rule's window at n_sites: |eps| from 10 N^(-1/2) up to 0.1
    assert bath.FSS_MIN / d.n_sites**0.5 < bath.EPS_MAX
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.n_chains = 1


def test_new_sizes():
    # the lattice and family-FSS sizes: quick no larger; every family keeps the 4 sizes the
    # N^(-1/2)-corrected fits need after the hypersphere's cap
    d, q = exp.ExponentsConfig.default(), exp.ExponentsConfig.quick()
    for f in ("lat_points", "lat_samples", "lat_eta_cells", "ffs_chains", "ffs_sphere_max"):
        assert getattr(q, f) <= getattr(d, f), f
    assert max(q.ffs_sizes) <= max(d.ffs_sizes)
    for c in (d, q):
        assert c.lat_points >= 5  # fit_divergence with G_c free needs 4, the rule keeps margin
        assert len([n for n in c.ffs_sizes if n <= c.ffs_sphere_max]) >= 4
        # the sweep's closest point obeys the range rule: eps >= 10 Gi and linear xi <= L/8
        lo = exp._lattice_eps_min(c, c.lat_cells)
        xi = (8 / 24 / lo) ** 0.5
        assert lo >= 10 * 18 * c.lat_temperature / (np.pi * (1 - 1 / 9))
        assert xi <= c.lat_cells * 3 / 8


def test_lattice_rows_tell_mean_field_apart():
    est = bath.Estimate
    # mean-field measurements: every row ok; hyperscaling (2 - D nu = 1.02) ok against the
    # mean-field 1, and its note gives its distance from 0 (25.5 SE): the violation is the finding
    rows = exp.lattice_rows(est(0.49, 0.02), est(0.98, 0.04), est(0.01, 0.02), label="L")
    assert [r.status for r in rows] == ["ok"] * 5
    hyper = rows[-1]
    assert hyper.theory == 1.0 and hyper.measured == pytest.approx(1.02)
    assert hyper.se == pytest.approx(0.04) and "25.5 SE from 0" in hyper.note
    assert "FAILS" in hyper.note
    fisher = rows[3]
    assert fisher.measured == pytest.approx(0.98 - 0.49 * 1.99)
    assert fisher.se == pytest.approx(np.sqrt(0.04**2 + (1.99 * 0.02) ** 2 + (0.49 * 0.02) ** 2))
    # 2-D Ising values: nu, gamma, eta off; Fisher holds (7/4 = 1 (2 - 1/4)); hyperscaling off
    rows = exp.lattice_rows(est(1.0, 0.02), est(1.75, 0.04), est(0.25, 0.02), label="L")
    assert [r.status for r in rows] == ["off", "off", "off", "ok", "off"]
    assert [r.theory for r in rows] == [0.5, 1.0, 0.0, 0.0, 1.0]


def test_family_fss_rows():
    # an O(3) family: the Binder value against critical_binder(3) = 0.1775, not 0.2705
    tr = exponents.TableRow
    u3 = bath.critical_binder(3)
    f = exponents.FamilyFSS(
        family="sphere",
        scan=None,
        n_components=3,
        binder_theory=u3,
        binder_critical=np.array([[0.2, 0.01], [0.19, 0.01]]),
        binder_limit=bath.Estimate(0.18, 0.01),
        crossings=None,
        beta_over_nu=bath.Estimate(0.35, 0.02),
        gamma_over_nu=bath.Estimate(0.5, 0.03),
        rows=(
            tr("binder_limit", u3, 0.18, 0.01, True),
            tr("beta_over_nu", 0.25, 0.35, 0.02, False),
            tr("gamma_over_nu", 0.5, 0.5, 0.03, True),
        ),
        snr_c=0.75,
        n_burn=(1, 1),
        n_steps=(2, 2),
        seconds=0.0,
    )
    rows = exp._family_fss_rows(f, 3.0, "run")
    assert [r.name.split(":")[0] for r in rows] == ["sphere"] * 3
    assert "O(3)" in rows[0].name and rows[0].theory == pytest.approx(0.17750, abs=1e-5)
    assert [r.status for r in rows] == ["ok", "off", "ok"]
    assert [r.theory for r in rows[1:]] == [0.25, 0.5]
    assert "0.2000 +- 0.0100" in rows[0].note and rows[0].se == 0.01


def _table(family, values, stderr=0.01):
    rows = tuple(
        exponents.TableRow(n, t, v, stderr, abs(v - t) <= 3 * stderr)
        for n, t, v in zip(("beta", "gamma", "jump"), (0.5, 1.0, 1.5), values)
    )
    lj = bath.LandauJump(snr_c=1.0, v=1.0, dv=0.0, kappa4=-2.0, jump=1.5)
    return exponents.ExponentTable(family, rows, (), {}, 1.0, lj, bath.Estimate(0.0, 0.01), 0.0)


def test_family_rows_with_the_finite_size_allowance():
    # gamma 1.2 +- 0.01: off; the response 0.995 +- 0.001 (5 SE) is ok only with its allowance
    # 0.004 (3 SE + 0.004 = 0.007 >= 0.005), and the row then carries that bound as a model tol
    rows = (
        exponents.TableRow("gamma", 1.0, 1.2, 0.01, False),
        exponents.TableRow("gamma_response", 1.0, 0.995, 0.001, True, 0.004),
        exponents.TableRow("delta", 3.0, 2.99, 0.001, False, 0.004),  # 10 SE: off even so
    )
    lj = bath.LandauJump(snr_c=1.0, v=1.0, dv=0.0, kappa4=-2.0, jump=1.5)
    tab = exponents.ExponentTable("f", rows, (), {}, 1.0, lj, bath.Estimate(0.01, 0.02), 0.0)
    out = exp._family_rows({"f": tab}, 3.0, "sizes")
    assert [r.name for r in out] == [
        "f: gamma",
        "f: gamma_response",
        "f: delta",
        "f: response / fluctuations - 1 (FDT)",
    ]
    assert [r.status for r in out] == ["off", "ok", "off", "ok"]
    assert out[0].se == 0.01 and out[0].tol is None
    assert out[1].tol == pytest.approx(0.007) and out[1].tol_basis == "model"
    assert "allowance" in out[1].note


def test_universality_figure():
    tables = {"a": _table("a", (0.5, 1.0, 1.5)), "b": _table("b", (0.5, 1.2, 1.49))}
    fig = exp._universality_figure(tables)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2
    assert "b" in axes[1].get_title() and "Landau 1.5" in axes[1].get_title()


@pytest.mark.slow
def test_quick_experiment_rows_are_ok():
    # --quick sizes at the report's seed: every row within 3 SE; the figures are made
    jax.config.update("jax_enable_x64", True)
    cfg = ReportConfig.default(quick=True)
    # the key `gltheory report --quick --seed 0` gives this experiment
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), zlib.crc32(b"exponents"))
    res = exp.exponents_experiment(cfg, key)
    off = [(r.name, r.theory, r.measured, r.se) for r in res.rows if not r.ok]
    assert not off, off
    names = {r.name for r in res.rows}
    assert "beta, +-1 bath" in names and "hypersphere: jump" in names
    # the lattice rows and one Binder row per family (O(3) for the hypersphere)
    assert any(n.startswith("nu (xi ~ eps^-nu), D = 2 lattice") for n in names)
    assert any(n.startswith("hyperscaling 2 - alpha - D nu") for n in names)
    binder = [n for n in names if "Binder value at the transition" in n]
    assert len(binder) == 5 and any("hypersphere" in n and "O(3)" in n for n in binder)
    assert set(res.figures) == {
        "exponents_table.png",
        "exponents_fss_collapse.png",
        "exponents_universality.png",
    }
    assert np.isfinite([r.measured for r in res.rows]).all()
