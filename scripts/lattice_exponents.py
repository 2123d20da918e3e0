"""nu, eta, gamma, Fisher and hyperscaling on the tempered D = 2 patch lattice (issue 17; 18 item 4).

The frozen-time Langevin sampler of the two-uniform-image patch model in the reduced variables
(:func:`gltheory.spatial.lattice_langevin`, k = 3) on the disordered side of the transition at
small noise temperatures T, analysed with :mod:`gltheory.ornstein_zernike`
(`docs/theory/lattice-exponents.md#measured`). Fitting-range rule: eps = 1/G - 1 in
[10 Gi(T), 0.5] with xi <= L/8. Writes JSON next to this file (``lattice_exponents.json``, or
``lattice_exponents.quick.json`` with ``--quick``) or to the path given.

Usage: ``.venv/bin/python scripts/lattice_exponents.py [out.json] [--quick]``.
Wall time on 2 cores shared with other jobs: about 8 minutes (``--quick``: about 2).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np

from gltheory import ornstein_zernike as oz, spatial as sp
from gltheory.bath import Estimate

K = 3
DT = 0.1  # h (1 + G/3) = 0.13; Leimkuhler-Matthews is exact in variance for linear modes


def measure(key, G, T, cells, n_replicas, n_samples, thin=2):
    eps = 1 / G - 1
    n_burn = int(max(500, 6 / (DT * (1 - G) + 1e-12)))  # six relaxation times of q = 0
    t0 = time.time()
    run = sp.lattice_langevin(
        key,
        G,
        window=K,
        cells=cells,
        n_replicas=n_replicas,
        n_burn=n_burn,
        n_samples=n_samples,
        thin=thin,
        dt=DT,
        temperature=T,
        start="disordered",
    )
    st = sp.lattice_statistics(run)
    f = oz.oz_fit(st.structure_factor, st.structure_factor_se, window=K)
    e = oz.eta_fit(st.structure_factor, st.structure_factor_se, window=K)
    xi_lin, chi_lin = oz.linear_correlation_length(G, K, T)
    row = dict(
        G=G,
        eps=eps,
        T=T,
        L=cells * K,
        n_replicas=n_replicas,
        n_burn=n_burn,
        n_samples=n_samples,
        thin=thin,
        xi=f.xi,
        xi_se=f.xi_se,
        chi=f.chi,
        chi_se=f.chi_se,
        chi2_dof=f.chi2_dof,
        eta=e.eta,
        eta_se=e.eta_se,
        xi_linear=xi_lin,
        chi_linear=chi_lin,
        seconds=time.time() - t0,
    )
    print(json.dumps(row), flush=True)
    return row


def main(argv):
    quick = "--quick" in argv
    out = [a for a in argv if not a.startswith("--")]
    default = Path(__file__).with_suffix(".quick.json" if quick else ".json")
    path = Path(out[0]) if out else default
    key = jax.random.key(2026)
    temps = (1e-3,) if quick else (1e-4, 1e-3, 1e-2)
    n_g = 6 if quick else 9
    result = dict(window=K, dt=DT, rule="eps=1/G-1 in [10 Gi(T), 0.5], xi <= L/8", sweeps={})
    for ti, T in enumerate(temps):
        gi = oz.ginzburg_distance(T, K)
        lo = max(10 * gi, 0.04)
        eps = np.geomspace(lo, 0.5, n_g) if lo < 0.3 else np.geomspace(0.06, 0.5, n_g)
        G = 1 / (1 + eps)
        rows = [
            measure(
                jax.random.fold_in(key, 100 * ti + j), float(g), T, 8, 32, 800 if quick else 1500
            )
            for j, g in enumerate(G)
        ]
        sweep = dict(T=T, ginzburg=gi, points=rows)
        g_arr = np.array([r["G"] for r in rows])
        xi, xse = np.array([r["xi"] for r in rows]), np.array([r["xi_se"] for r in rows])
        chi, cse = np.array([r["chi"] for r in rows]), np.array([r["chi_se"] for r in rows])
        ok = xi <= 8 * K / 8
        if 10 * gi < 0.3 and ok.sum() >= 5:
            # primary: G_c fitted, no analytic correction (3 parameters)
            nu = oz.fit_divergence(g_arr[ok], xi[ok], xse[ok], correction=False)
            ga = oz.fit_divergence(g_arr[ok], chi[ok], cse[ok], reduced="direct", correction=False)
            sweep["nu"] = nu._asdict()
            sweep["gamma"] = ga._asdict()
            # secondary: the mean-field G_c = 1 given, correction fitted
            nu1 = oz.fit_divergence(g_arr[ok], xi[ok], xse[ok], critical=1.0)
            ga1 = oz.fit_divergence(g_arr[ok], chi[ok], cse[ok], critical=1.0, reduced="direct")
            sweep["nu_mean_field_Gc"] = nu1._asdict()
            sweep["gamma_mean_field_Gc"] = ga1._asdict()
        # local (effective) exponent between neighbouring points, eps from G_c = 1
        le = np.log(1 / g_arr - 1)
        sweep["nu_eff"] = [
            dict(
                eps=float(math.exp(0.5 * (le[j] + le[j + 1]))),
                nu=float(-(math.log(xi[j + 1]) - math.log(xi[j])) / (le[j + 1] - le[j])),
                se=float(
                    math.hypot(xse[j] / xi[j], xse[j + 1] / xi[j + 1]) / abs(le[j + 1] - le[j])
                ),
            )
            for j in range(len(rows) - 1)
        ]
        result["sweeps"][str(T)] = sweep
        path.write_text(json.dumps(result, indent=1))
    # eta close to the transition at the smallest T: xi ~ L/8 on L = 48
    T = temps[0]
    cells = 8 if quick else 16
    eps_eta = 0.04 if quick else 0.01
    row = measure(
        jax.random.fold_in(key, 999), 1 / (1 + eps_eta), T, cells, 32, 1000 if quick else 2500
    )
    result["eta"] = row
    sw = result["sweeps"][str(T)]
    if "nu" in sw:
        rel = oz.lattice_relations(
            Estimate(sw["gamma"]["exponent"], sw["gamma"]["exponent_se"]),
            Estimate(sw["nu"]["exponent"], sw["nu"]["exponent_se"]),
            Estimate(row["eta"], row["eta_se"]),
        )
        result["relations"] = [r._asdict() for r in rel]
    path.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "sweeps"}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
