"""The crossover with the noise temperature T on the D = 2 patch lattice (issue 18 item 4).

xi and chi of the Ornstein-Zernike fit of S(q) on the disordered side, for T = 0.1 and T = 1,
against the self-consistent Gaussian (Hartree) prediction :func:`gltheory.ornstein_zernike.
hartree_coupling`, which describes T <= 1e-2 within errors (`scripts/lattice_exponents.json`).
Writes JSON next to this file (or to the path given). k = 3, L = 24, 32 replicas, dt = 0.1.

Usage: ``.venv/bin/python scripts/lattice_crossover.py [out.json] [--t1-exponents]``; the flag
adds effective nu, gamma (G_c fitted) and eta at T = 1 on L = 48 to the JSON. Wall time on 2
shared cores: about 3 minutes, with the flag about 10.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from gltheory import ornstein_zernike as oz, spatial as sp

K, CELLS, DT = 3, 8, 0.1
SWEEPS = {0.1: (0.5, 0.7, 0.9, 1.0, 1.1, 1.2), 1.0: (0.5, 1.0, 2.0, 3.0, 4.0)}


def exponents_t1(path: Path) -> None:
    """Effective nu, gamma (G_c fitted) and eta at T = 1, L = 48, added to the JSON at ``path``."""
    key = jax.random.key(2028)
    out = json.loads(path.read_text()) if path.exists() else {}
    rows = []
    for j, G in enumerate((3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0)):
        t0 = time.time()
        run = sp.lattice_langevin(
            jax.random.fold_in(key, j),
            G,
            window=K,
            cells=16,
            n_replicas=32,
            n_burn=4000,
            n_samples=1500,
            thin=4,
            dt=0.05,
            temperature=1.0,
            start="disordered",
        )
        st = sp.lattice_statistics(run)
        f = oz.oz_fit(st.structure_factor, st.structure_factor_se, window=K)
        e = oz.eta_fit(st.structure_factor, st.structure_factor_se, window=K)
        row = dict(
            G=G, xi=f.xi, xi_se=f.xi_se, chi=f.chi, chi_se=f.chi_se, chi2_dof=f.chi2_dof,
            eta=e.eta, eta_se=e.eta_se, binder=st.binder, binder_se=st.binder_se,
            seconds=time.time() - t0,
        )  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
    out["t1_exponents"] = analyse_t1(rows)
    path.write_text(json.dumps(out, indent=1))


def chi_xi_slope(xi, xi_se, chi, chi_se):
    """gamma/nu = 2 - eta from chi ~ xi^(gamma/nu): weighted fit of ln chi on ln xi, no G_c needed.

    Effective variance sigma_lnchi^2 + (slope sigma_lnxi)^2 (two passes); SE scaled by
    max(1, sqrt(chi2/dof)).
    """
    lx, ly = np.log(xi), np.log(chi)
    sx, sy = np.asarray(xi_se) / xi, np.asarray(chi_se) / chi
    slope = 2.0
    for _ in range(3):
        w = 1 / (sy**2 + (slope * sx) ** 2)
        a = np.stack([np.ones_like(lx), lx], -1)
        cov = np.linalg.inv(a.T @ (a * w[:, None]))
        coef = cov @ (a.T @ (w * ly))
        slope = coef[1]
    chi2 = float(np.sum(w * (ly - a @ coef) ** 2)) / max(lx.size - 2, 1)
    return float(slope), float(np.sqrt(cov[1, 1]) * max(1.0, np.sqrt(chi2))), chi2


def analyse_t1(rows):
    """Fits of the T = 1 sweep: nu, gamma with G_c fitted where the data allow, 2 - eta from chi(xi)."""
    res = dict(L=48, dt=0.05, points=rows)
    ok = [r for r in rows if r["xi"] <= 48 / 8]
    g = [r["G"] for r in ok]
    for name, y, reduced in (("nu", "xi", "inverse"), ("gamma", "chi", "direct")):
        try:
            f = oz.fit_divergence(
                g,
                [r[y] for r in ok],
                [r[y + "_se"] for r in ok],
                reduced=reduced,
                correction=False,
                eps_range=(0, 1),
            )
            res[name] = f._asdict()
        except ValueError as err:  # no stable power law in the range: say so
            res[name] = dict(error=str(err))
    slope, se, chi2 = chi_xi_slope(
        np.array([r["xi"] for r in ok]),
        np.array([r["xi_se"] for r in ok]),
        np.array([r["chi"] for r in ok]),
        np.array([r["chi_se"] for r in ok]),
    )
    res["gamma_over_nu"] = dict(value=slope, stderr=se, chi2_dof=chi2, eta_fisher=2 - slope)
    return res


def main(argv):
    flags = [a for a in argv if a.startswith("--")]
    argv = [a for a in argv if not a.startswith("--")]
    path = Path(argv[0]) if argv else Path(__file__).with_suffix(".json")
    if "--t1-exponents" in flags:
        exponents_t1(path)
        return
    if "--t1-refit" in flags:  # the fits again, from the rows printed by --t1-exponents (argv[1])
        rows = [json.loads(x) for x in Path(argv[1]).read_text().splitlines() if x.startswith("{")]
        out = json.loads(path.read_text())
        out["t1_exponents"] = analyse_t1(rows)
        path.write_text(json.dumps(out, indent=1))
        return
    key = jax.random.key(2027)
    out = dict(window=K, L=K * CELLS, dt=DT, sweeps={})
    for ti, (T, gs) in enumerate(SWEEPS.items()):
        rows = []
        for j, G in enumerate(gs):
            t0 = time.time()
            run = sp.lattice_langevin(
                jax.random.fold_in(key, 100 * ti + j),
                G,
                window=K,
                cells=CELLS,
                n_replicas=32,
                n_burn=3000,
                n_samples=1500,
                thin=2,
                dt=DT,
                temperature=T,
                start="disordered",
            )
            st = sp.lattice_statistics(run)
            f = oz.oz_fit(st.structure_factor, st.structure_factor_se, window=K)
            ge = oz.hartree_coupling(G, T, K, (K * CELLS,) * 2)
            xh, ch = oz.linear_correlation_length(ge, K, T)
            row = dict(
                G=G,
                T=T,
                xi=f.xi,
                xi_se=f.xi_se,
                chi=f.chi,
                chi_se=f.chi_se,
                chi2_dof=f.chi2_dof,
                binder=st.binder,
                binder_se=st.binder_se,
                G_hartree=ge,
                xi_hartree=xh,
                chi_hartree=ch,
                seconds=time.time() - t0,
            )
            print(json.dumps(row), flush=True)
            rows.append(row)
        out["sweeps"][str(T)] = dict(T=T, ginzburg=oz.ginzburg_distance(T, K), points=rows)
        path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
