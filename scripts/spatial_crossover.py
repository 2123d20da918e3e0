"""The crossover of the patch model's frozen-time transition with the noise temperature T.

    python scripts/spatial_crossover.py run        # production (resumable)
    python scripts/spatial_crossover.py analyse    # adds the analysis to the JSON
    (options: --quick (tiny smoke run, written to /tmp), --out PATH, --temperatures T ...)

Issue 18 item 4 (`docs/theory/lattice-exponents.md#crossover`). D = 2, k = 3, normal noise,
float32, dt = 0.025 as `scripts/spatial_fss.py`, whose recorded T = 1 study
(`scripts/spatial_fss.json`) is reused, not rerun. With lengths in units of the window the
weight is exp(-F/T) of a k-independent functional, T counting loops; the Ginzburg length is
l_G / k = 0.076 / sqrt(T), so the finite-size crossover variable is x = (L/k) sqrt(T) (one-loop
crossover x_c = 0.34). T in {0.001, 0.01, 0.04, 0.16, 0.64}: x from 0.13 to 6.4.

For each T:

1. **bracket** G*(T): bisection in ln(G - 1) on the sign of U(L/k = 8) - U(L/k = 4) from
   short runs (5 steps, 6 below T = 0.01, ordered start);
2. **pilot** (`gltheory.spatial.equilibration_plan`, ordered start, L/k = 8, at the bracket's
   centre): tau_int of |M|; production burn-in max(20 tau_int, floor), thinning tau_int / 2;
3. **production**: a 5-point grid G_c + delta (-2..2), delta = 0.4 sqrt(T) (the T = 1 study's
   spacing 0.4 scaled with the mean-field width r ~ sqrt(T)), at L/k = 4 and 8, ordered start;
   at the smallest T also a disordered start at the centre (L/k = 8). Each point records M at
   every sample (tau_int re-measured on the production series, U on both halves).

Below T = 0.01 the uniform mode relaxes in a time ~ sqrt(N / T): bisection burn-in, pilot length
and the burn-in floor are scaled by sqrt(0.01 / T). A first T = 0.001 attempt without the
scaling is kept in the JSON as ``superseded``.

The JSON is written atomically after every bisection step and point; a rerun skips what is
there. ``analyse``: G*(T), U*(T) (`lattice_binder_crossings`: the quadratic through the three
grid points around the crossing located by linear interpolation at the largest U), gamma/nu
from chi' = N<M^2> and beta/nu from <|M|> at G*(T) (`fss_exponent`, same points), for the new
temperatures and for T = 1 from `spatial_fss.json` (L/k = 4, 8 only, the same rule); the
one-loop uniform-mode U* (`zero_mode_crossing`); the small-T law G* - 1 = T (B ln(1/T) + A);
and the effective exponents of `lattice_exponents.json` / `lattice_crossover.json` against the
distance to G*(T) (`gstar_of_T`), with eps / Gi(T). Recorded run: 23 min wall (plus 2 for the
superseded attempt), one process on 2 shared cores at load 4-6.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gltheory import spatial as sp
from gltheory._io import atomic_write_text

# U and its jackknife SE from a recorded trace: the class study's estimator, shared (the
# scripts folder is this script's own, so the sibling script imports as a module)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from spatial_fss import _binder_from_trace  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "spatial_crossover.json"
FSS = HERE / "spatial_fss.json"
EXPONENTS = HERE / "lattice_exponents.json"
CROSSOVER = HERE / "lattice_crossover.json"
DT = 0.025
K = 3
CELLS = (4, 8)
EPS_MAX = 0.5  # the fitting-range rule of docs/theory/lattice-exponents.md#fitting-range
TEMPERATURES = (0.01, 0.001, 0.64, 0.16, 0.04)  # run order: the two ends first
FULL = dict(
    bisect_iters=5,
    bisect_lo=0.02,  # G - 1
    bisect_hi=8.0,
    bisect_R={4: 64, 8: 32},
    bisect_burn=5000,
    bisect_samples=30,
    bisect_thin=100,
    pilot_R=32,
    n_pilot=8000,
    R={4: 96, 8: 48},
    burn_floor=4000,
    meas_tau=40,
    meas_floor=8000,
    meas_cap=12000,
    n_grid=5,
    width=0.4,
)
QUICK = dict(
    FULL,
    bisect_iters=2,
    bisect_R={4: 8, 8: 8},
    bisect_burn=100,
    bisect_samples=10,
    bisect_thin=10,
    pilot_R=8,
    n_pilot=400,
    R={4: 8, 8: 8},
    burn_floor=100,
    meas_tau=5,
    meas_floor=200,
    meas_cap=400,
    n_grid=3,
)


def _write(path: Path, payload: dict) -> None:
    # atomic (gltheory._io); NaN kept as in scripts/spatial_fss.json (allow_nan)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload, indent=1, allow_nan=True))


def _run(key, G, T, cells, R, n_burn, n_samples, thin, start="ordered"):
    return sp.lattice_langevin(
        key,
        G,
        window=K,
        cells=cells,
        lattice_ndim=2,
        n_replicas=R,
        n_burn=n_burn,
        n_samples=n_samples,
        thin=thin,
        dt=DT,
        temperature=T,
        start=start,
        structure_factor=False,
        record=True,
        dtype=jnp.float32,
    )


def _point(key, G, T, cells, R, n_burn, n_samples, thin, start) -> dict:
    t0 = time.perf_counter()
    run = _run(key, G, T, cells, R, n_burn, n_samples, thin, start)
    st = sp.lattice_statistics(run)
    wall = time.perf_counter() - t0
    trace = np.asarray(run.trace, np.float64)
    ac = sp.integrated_autocorrelation_time(np.abs(trace))
    half = n_samples // 2
    u1, u1_se = _binder_from_trace(trace[:half])
    u2, u2_se = _binder_from_trace(trace[half:])
    n = st.n_sites
    chi2 = n * np.asarray(run.m2, np.float64)
    return dict(
        T=float(T),
        k=K,
        cells=int(cells),
        L=int(cells * K),
        G=float(G),
        start=start,
        R=int(R),
        n_burn=int(n_burn),
        thin=int(thin),
        n_samples=int(n_samples),
        binder=st.binder,
        binder_se=st.binder_se,
        chi=st.chi,
        chi_se=st.chi_se,
        chi_full=float(chi2.mean()),
        chi_full_se=float(chi2.std(ddof=1) / np.sqrt(len(chi2))),
        m_abs=st.m_abs,
        m_abs_se=st.m_abs_se,
        n_sites=n,
        tau_int_production=ac.tau_int * thin * DT,
        burn_in_over_tau_production=n_burn / max(ac.tau_int * thin, 1e-12),
        binder_first_half=u1,
        binder_first_half_se=u1_se,
        binder_second_half=u2,
        binder_second_half_se=u2_se,
        site_updates=float(n) * R * (n_burn + n_samples * thin),
        wall_s=wall,
        load_average_1min=os.getloadavg()[0],
    )


def run(quick: bool, out: Path, temperatures) -> None:
    cfg = QUICK if quick else FULL
    payload = json.loads(out.read_text()) if out.exists() else {}
    payload.update(
        name="spatial_crossover",
        command="python scripts/spatial_crossover.py run; "
        "python scripts/spatial_crossover.py analyse",
        quick=quick,
        k=K,
        lattice_ndim=2,
        dt=DT,
        dtype="float32",
        noise="normal",
        config={
            k: (v if not isinstance(v, dict) else {str(a): b for a, b in v.items()})
            for k, v in cfg.items()
        },
        cpu_count=os.cpu_count(),
    )
    temps = payload.setdefault("temperatures", {})
    base = jax.random.key(20261204 + 7)
    for it, T in enumerate(temperatures):
        rec = temps.setdefault(f"{T:g}", dict(T=T, bisection=[], points=[]))
        tkey = jax.random.fold_in(base, it + int(1000 * T))
        # 1. bracket
        # below T = 0.01 the (mean-field) zero mode relaxes as sqrt(L^2 / T): burn-in and pilot
        # scaled by sqrt(0.01 / T)
        slow = max(1.0, math.sqrt(0.01 / T))
        # T < 0.01: a lower start (G* - 1 ~ T ln(1/T)) and one more step
        lo = math.log(min(cfg["bisect_lo"], 2 * T))
        hi = math.log(cfg["bisect_hi"])
        for j in range(cfg["bisect_iters"] + (T < 0.01)):
            if j < len(rec["bisection"]):
                b = rec["bisection"][j]
            else:
                G = 1 + math.exp(0.5 * (lo + hi))
                t0 = time.perf_counter()
                us = {}
                for c in CELLS:
                    r = _run(
                        jax.random.fold_in(tkey, 100 + 10 * j + c),
                        G,
                        T,
                        c,
                        cfg["bisect_R"][c],
                        int(cfg["bisect_burn"] * slow),
                        cfg["bisect_samples"],
                        cfg["bisect_thin"],
                    )
                    st = sp.lattice_statistics(r)
                    us[c] = (st.binder, st.binder_se)
                b = dict(
                    G=G,
                    binder={str(c): us[c][0] for c in CELLS},
                    binder_se={str(c): us[c][1] for c in CELLS},
                    ordered_side=bool(us[8][0] > us[4][0]),
                    wall_s=time.perf_counter() - t0,
                    load_average_1min=os.getloadavg()[0],
                )
                rec["bisection"].append(b)
                _write(out, payload)
                print(
                    f"T={T:g} bisect G={G:.4f} U4={us[4][0]:.3f} U8={us[8][0]:.3f} "
                    f"({b['wall_s']:.0f} s, load {b['load_average_1min']:.1f})",
                    flush=True,
                )
            x = math.log(b["G"] - 1)
            if b["ordered_side"]:
                hi = x
            else:
                lo = x
        Gc = 1 + math.exp(0.5 * (lo + hi))
        rec["bracket"] = [1 + math.exp(lo), 1 + math.exp(hi)]
        rec["G_centre"] = Gc
        # 2. pilot
        if "plan" not in rec:
            t0 = time.perf_counter()
            pl = sp.equilibration_plan(
                jax.random.fold_in(tkey, 1),
                Gc,
                window=K,
                cells=CELLS[-1],
                lattice_ndim=2,
                n_replicas=cfg["pilot_R"],
                n_pilot=int(cfg["n_pilot"] * slow),
                dt=DT,
                temperature=T,
                dtype=jnp.float32,
            )
            rec["plan"] = dict(
                n_pilot=int(cfg["n_pilot"] * slow),
                pilot_R=cfg["pilot_R"],
                G=Gc,
                cells=CELLS[-1],
                tau_int=pl.tau_int,
                n_burn=pl.n_burn,
                thin=pl.thin,
                reliable=pl.reliable,
                wall_s=time.perf_counter() - t0,
            )
            _write(out, payload)
            print(f"T={T:g} plan {rec['plan']}", flush=True)
        plan = rec["plan"]
        # 3. production
        delta = cfg["width"] * math.sqrt(T)
        half = cfg["n_grid"] // 2
        grid = [Gc + delta * i for i in range(-half, half + 1)]
        rec["grid"] = grid
        tau_steps = plan["tau_int"] / DT
        n_burn = int(max(plan["n_burn"], cfg["burn_floor"] * slow))
        thin = int(max(1, plan["thin"]))
        cap = max(cfg["meas_cap"], 12 * tau_steps)  # at least 12 tau_int measured
        meas = int(min(max(cfg["meas_tau"] * tau_steps, cfg["meas_floor"]), cap))
        n_samples = max(8, meas // thin)
        jobs = [(c, G, "ordered") for c in CELLS for G in grid]
        if T == min(temperatures):
            jobs.append((CELLS[-1], Gc, "disordered"))
        done = {(p["cells"], round(p["G"], 9), p["start"]) for p in rec["points"]}
        for i, (c, G, start) in enumerate(jobs):
            if (c, round(G, 9), start) in done:
                continue
            p = _point(
                jax.random.fold_in(tkey, 1000 + i),
                G,
                T,
                c,
                cfg["R"][c],
                n_burn,
                n_samples,
                thin,
                start,
            )
            rec["points"].append(p)
            _write(out, payload)
            print(
                f"T={T:g} L/k={c} G={G:.4f} {start:10s} U={p['binder']:.4f}±"
                f"{p['binder_se']:.4f} chi'={p['chi_full']:.3f}±{p['chi_full_se']:.3f} "
                f"|M|={p['m_abs']:.4f} tau={p['tau_int_production']:.2f} U halves "
                f"{p['binder_first_half']:.3f}/{p['binder_second_half']:.3f} "
                f"({p['wall_s']:.0f} s, load {p['load_average_1min']:.1f})",
                flush=True,
            )


def _fss_pair(points: list[dict]) -> dict:
    """G*, U* (quadratic Binder fits, all grid points) and the two-size gamma/nu, beta/nu."""
    pts = [q for q in points if q["start"] == "ordered" and q["cells"] in CELLS]
    G = np.array(sorted({round(q["G"], 9) for q in pts}))
    shape = (len(CELLS), G.size)
    arr = {n: np.full(shape, np.nan) for n in ("binder", "chi_full", "m_abs")}
    err = {n: np.full(shape, np.nan) for n in arr}
    for q in pts:
        i, j = CELLS.index(q["cells"]), int(np.argmin(np.abs(G - q["G"])))
        for n in arr:
            arr[n][i, j], err[n][i, j] = q[n], q[n + "_se"]
    s = np.array(CELLS, float)
    # the rule: linear interpolation of U_8 - U_4 between neighbouring grid points; of its
    # sign changes the one at the largest U (on the disordered side both U vanish and cross in
    # the noise) locates the crossing; the quadratic through the three grid points centred on
    # the grid point nearest it gives G*, U* (and is where gamma/nu, beta/nu are evaluated);
    # the five-point quadratic is kept as a check
    cr5 = sp.lattice_binder_crossings(G, arr["binder"], err["binder"], s, degree=2)
    g_lin, g_lin_se, u_lin = _linear_crossing(G, arr["binder"], err["binder"])
    j = int(np.argmin(np.abs(G - g_lin))) if math.isfinite(g_lin) else G.size // 2
    j = min(max(j, 1), G.size - 2)
    window = (G[j - 1] - 1e-9, G[j + 1] + 1e-9)
    cr = sp.lattice_binder_crossings(G, arr["binder"], err["binder"], s, G_range=window)
    out = dict(
        G=G.tolist(),
        sizes=list(CELLS),
        binder=arr["binder"].tolist(),
        binder_se=err["binder"].tolist(),
        chi_full=arr["chi_full"].tolist(),
        chi_full_se=err["chi_full"].tolist(),
        m_abs=arr["m_abs"].tolist(),
        m_abs_se=err["m_abs"].tolist(),
        fit_window=[float(G[j - 1]), float(G[j + 1])],
        five_point=dict(
            G_star=float(cr5.G_star[0]),
            G_star_se=float(cr5.G_star_se[0]),
            binder_star=float(cr5.binder_star[0]),
            binder_star_se=float(cr5.binder_star_se[0]),
            chi2_dof=cr5.chi2_dof.tolist(),
        ),
        G_star=float(cr.G_star[0]),
        G_star_se=float(cr.G_star_se[0]),
        binder_star=float(cr.binder_star[0]),
        binder_star_se=float(cr.binder_star_se[0]),
        G_star_linear=g_lin,
        G_star_linear_se=g_lin_se,
        binder_star_linear=u_lin,
    )
    if not math.isfinite(out["G_star"]):
        return out
    for name, col, sign in (("gamma_over_nu", "chi_full", 1), ("beta_over_nu", "m_abs", -1)):
        try:
            e = sp.fss_exponent(
                G, arr[col], err[col], s, out["G_star"], out["G_star_se"], G_range=window
            )
        except ValueError as exc:  # e.g. G* outside a size's fitted range
            out[name] = dict(error=str(exc))
            continue
        out[name] = dict(
            value=sign * e.exponent,
            se=e.exponent_se,
            se_stat=e.exponent_se_stat,
            se_G=e.exponent_se_G,
            values=e.values.tolist(),
            values_se=e.values_se.tolist(),
        )
    return out


def _linear_crossing(G, u, e) -> tuple[float, float, float]:
    """The crossing of the two sizes' linear interpolants at the largest U, its delta-method
    SE (the four grid values independent) and U there; NaN if the curves do not cross."""
    d = u[1] - u[0]
    best = (math.nan, math.nan, -math.inf)
    for j in range(G.size - 1):
        if not (np.isfinite(d[j]) and np.isfinite(d[j + 1])) or d[j] * d[j + 1] > 0:
            continue
        if d[j] == d[j + 1]:
            continue
        f = d[j] / (d[j] - d[j + 1])
        g = G[j] + f * (G[j + 1] - G[j])
        uc = u[0, j] + f * (u[0, j + 1] - u[0, j])
        if uc <= best[2]:
            continue
        # dG/dd_j and dG/dd_{j+1}; d = U_8 - U_4 at each grid point
        h = G[j + 1] - G[j]
        den = (d[j] - d[j + 1]) ** 2
        dj, dj1 = -h * d[j + 1] / den, h * d[j] / den
        var = dj**2 * (e[0, j] ** 2 + e[1, j] ** 2) + dj1**2 * (e[0, j + 1] ** 2 + e[1, j + 1] ** 2)
        best = (float(g), math.sqrt(var), float(uc))
    return best if math.isfinite(best[0]) else (math.nan, math.nan, math.nan)


def _starts(points: list[dict]) -> list[dict]:
    """Ordered against disordered start at the same (L/k, G): differences in SE units."""
    rows = []
    for d in (q for q in points if q["start"] == "disordered"):
        o = [q for q in points if q["start"] == "ordered" and q["cells"] == d["cells"]]
        o = [q for q in o if abs(q["G"] - d["G"]) < 1e-9]
        if not o:
            continue
        o = o[0]
        row = dict(cells=d["cells"], G=d["G"])
        for n in ("binder", "chi_full", "m_abs"):
            diff, se = o[n] - d[n], math.hypot(o[n + "_se"], d[n + "_se"])
            row[n] = dict(ordered=o[n], disordered=d[n], diff=diff, se=se, z=diff / se)
        rows.append(row)
    return rows


def zero_mode_binder(z: float) -> float:
    """U = 1 - <y^4> / (3 <y^2>^2) of the zero-mode weight exp(-z y^2 - y^4) (0.2705 at z = 0)."""
    y = np.linspace(-12.0, 12.0, 240001)
    w = np.exp(-z * y**2 - y**4 - np.max(-z * y**2 - y**4))
    m0, m2, m4 = (np.sum(y**p * w) for p in (0, 2, 4))
    return float(1 - m4 * m0 / (3 * m2**2))


def zero_mode_crossing(x_small: float, k: int = K) -> dict:
    """One-loop zero-mode prediction of the crossing of sizes L and 2L
    (`docs/theory/lattice-exponents.md#crossover-scale`): the non-zero modes shift the zero
    mode's mass by (u / 4 pi c) ln(L/k) + const, so at the crossing the zero-mode variable is
    z* = -x (24 sqrt(3) ln 2) / (pi (1 - k^-2)), x = (L/k) sqrt(T) of the smaller size; U* is
    the zero-mode Binder cumulant there (chi' ~ L and <|M|> ~ L^(-1/2) still hold)."""
    z = -x_small * 24 * math.sqrt(3) * math.log(2) / (math.pi * (1 - 1 / k**2))
    return dict(z_star=z, binder_star=zero_mode_binder(z))


def _halves(points: list[dict]) -> dict:
    """U of the first against the second half of each point's samples (z-scores)."""
    z = [
        (q["binder_first_half"] - q["binder_second_half"])
        / math.hypot(q["binder_first_half_se"], q["binder_second_half_se"])
        for q in points
    ]
    z = np.array([v for v in z if math.isfinite(v)])
    return dict(
        n=int(z.size), max_abs_z=float(np.max(np.abs(z))), rms_z=float(np.sqrt(np.mean(z**2)))
    )


def _gstar_small_T(rows: list[dict], k: int = K) -> dict:
    """The small-T law G* - 1 = T (B ln(1/T) + A): B fixed at its one-loop (Hartree) value
    6 / (pi (1 - k^-2)) and A fitted (weighted mean of (G* - 1)/T - B ln(1/T)) on the measured
    T <= 0.04; and, as a check, A and B both fitted on the same points."""
    B0 = 6.0 / (math.pi * (1 - 1 / k**2))
    use = [r for r in rows if r["T"] <= 0.04 + 1e-12 and math.isfinite(r["G_star"])]
    out = dict(B_hartree=B0, T_used=[r["T"] for r in use], rule="T <= 0.04, B fixed")
    if not use:
        return out
    T = np.array([r["T"] for r in use])
    y = (np.array([r["G_star"] for r in use]) - 1) / T
    ye = np.array([r["G_star_se"] for r in use]) / T
    a = y - B0 * np.log(1 / T)
    w = 1 / ye**2
    A = float(np.sum(w * a) / np.sum(w))
    A_se = float(1 / np.sqrt(np.sum(w)))
    chi2 = float(np.sum(w * (a - A) ** 2))
    if len(use) > 1:
        A_se *= math.sqrt(max(1.0, chi2 / (len(use) - 1)))
    out.update(A=A, A_se=A_se, chi2=chi2, dof=len(use) - 1)
    # successive slopes d[(G* - 1)/T] / d ln(1/T): B where the law holds
    out["pair_slopes"] = [
        dict(
            T=[float(T[i]), float(T[i + 1])],
            slope=float((y[i] - y[i + 1]) / math.log(T[i + 1] / T[i])),
            se=float(math.hypot(ye[i], ye[i + 1]) / math.log(T[i + 1] / T[i])),
        )
        for i in range(len(use) - 1)
    ]
    if len(use) >= 2:
        X = np.stack([np.log(1 / T), np.ones_like(T)], axis=1)
        cov = np.linalg.inv(X.T @ (X * w[:, None]))
        c = cov @ (X.T @ (w * y))
        out["free"] = dict(
            B=float(c[0]),
            B_se=float(np.sqrt(cov[0, 0])),
            A=float(c[1]),
            A_se=float(np.sqrt(cov[1, 1])),
        )
    return out


def gstar_of_T(T: float, table: list[dict], law: dict) -> tuple[float, float, str]:
    """G*(T): measured where it was; for T below the smallest measured one the small-T law;
    between measured temperatures linear interpolation in ln T (SE interpolated alike)."""
    meas = sorted((r for r in table if math.isfinite(r["G_star"])), key=lambda r: r["T"])
    for r in meas:
        if abs(r["T"] - T) <= 1e-12 * max(1, T):
            return r["G_star"], r["G_star_se"], "measured"
    if T < meas[0]["T"]:
        if "A" not in law:
            raise ValueError(f"no small-T law to extrapolate G* to T={T:g}")
        B0 = law["B_hartree"]
        g = 1 + T * (B0 * math.log(1 / T) + law["A"])
        return g, T * law["A_se"], "small-T law"
    for lo, hi in zip(meas[:-1], meas[1:]):
        if lo["T"] < T < hi["T"]:
            f = math.log(T / lo["T"]) / math.log(hi["T"] / lo["T"])
            g = (1 - f) * lo["G_star"] + f * hi["G_star"]
            se = (1 - f) * lo["G_star_se"] + f * hi["G_star_se"]
            return g, se, "interpolated in ln T"
    raise ValueError(f"no G*(T) for T={T:g}")


def _local(G, y, ye, g_star, g_star_se, reduced):
    """-d ln y / d ln eps between neighbouring couplings, eps = 1 - G/G* (``direct``, for chi)
    or G*/G - 1 (``inverse``, for xi: the forms in which the OZ law is an exact power,
    `docs/theory/lattice-exponents.md#linear-model`), with SEs: the two points' (independent)
    errors, plus half the spread from G* +- se in quadrature."""

    def slopes(gs):
        eps = 1 - G / gs if reduced == "direct" else gs / G - 1
        return -np.diff(np.log(y)) / np.diff(np.log(eps)), eps

    x, eps = slopes(g_star)
    rel = ye / y
    se = np.sqrt(rel[1:] ** 2 + rel[:-1] ** 2) / np.abs(np.diff(np.log(eps)))
    if g_star_se > 0:
        xp, _ = slopes(g_star + g_star_se)
        xm, _ = slopes(g_star - g_star_se)
        se = np.hypot(se, 0.5 * np.abs(xp - xm))
    return x, se, np.sqrt(eps[1:] * eps[:-1])


def _reference(table: list[dict], law: dict) -> list[dict]:
    """The recorded chi(G), xi(G) sweeps against eps = 1 - G / G*(T)."""
    from gltheory.ornstein_zernike import ginzburg_distance

    sets = []
    if EXPONENTS.exists():
        ex = json.loads(EXPONENTS.read_text())
        for key, sw in ex["sweeps"].items():
            sets.append((f"lattice_exponents.json sweeps[{key}]", float(sw["T"]), sw["points"]))
    if CROSSOVER.exists():
        cx = json.loads(CROSSOVER.read_text())
        for key, sw in cx["sweeps"].items():
            sets.append((f"lattice_crossover.json sweeps[{key}]", float(sw["T"]), sw["points"]))
        sets.append(("lattice_crossover.json t1_exponents", 1.0, cx["t1_exponents"]["points"]))
    out = []
    for name, T, pts in sets:
        pts = sorted(pts, key=lambda q: q["G"])
        try:
            gs, gse, how = gstar_of_T(T, table, law)
        except ValueError as exc:  # (quick runs) no G*(T) to refer to
            out.append(dict(source=name, T=T, note=str(exc)))
            continue
        n_all = len(pts)
        pts = [q for q in pts if 0 < 1 - q["G"] / gs <= EPS_MAX]
        # finite size: a Binder cumulant (where recorded) more than 3 SE above 0 means the
        # lattice is not large against xi (the disordered phase of a large lattice has U = 0)
        pts = [q for q in pts if not q.get("binder", 0) > 3 * q.get("binder_se", np.inf)]
        if len(pts) < 2:
            out.append(
                dict(
                    source=name,
                    T=T,
                    G_star=gs,
                    G_star_se=gse,
                    G_star_from=how,
                    note=f"fewer than two couplings with 0 < eps <= {EPS_MAX}",
                )
            )
            continue
        G = np.array([q["G"] for q in pts])
        gi = ginzburg_distance(T, K)
        row = dict(
            source=name,
            T=T,
            G_star=gs,
            G_star_se=gse,
            G_star_from=how,
            ginzburg=gi,
            n_points=n_all,
            G=G.tolist(),
            eps=(1 - G / gs).tolist(),
        )
        for n, col, red in (("gamma_eff", "chi", "direct"), ("nu_eff", "xi", "inverse")):
            y = np.array([q[col] for q in pts])
            ye = np.array([q[col + "_se"] for q in pts])
            x, se, _ = _local(G, y, ye, gs, gse, red)
            em = np.sqrt((1 - G[1:] / gs) * (1 - G[:-1] / gs))
            row[n] = x.tolist()
            row[n + "_se"] = se.tolist()
            # the chord: first to last coupling (the local values telescope into it)
            cx, cse, _ = _local(G[[0, -1]], y[[0, -1]], ye[[0, -1]], gs, gse, red)
            row[n + "_chord"] = float(cx[0])
            row[n + "_chord_se"] = float(cse[0])
            row["eps_mid"] = em.tolist()
            row["eps_mid_over_gi"] = (em / gi).tolist()
        out.append(row)
    return out


def analyse(out: Path) -> None:
    from gltheory.ornstein_zernike import ginzburg_distance

    payload = json.loads(out.read_text())
    table = []
    for key, rec in sorted(payload["temperatures"].items(), key=lambda kv: kv[1]["T"]):
        sizes = {q["cells"] for q in rec["points"] if q["start"] == "ordered"}
        if sizes != set(CELLS):  # not (yet) measured at both sizes
            continue
        row = dict(T=rec["T"], source="spatial_crossover.json", **_fss_pair(rec["points"]))
        row["starts"] = _starts(rec["points"])
        row["halves"] = _halves(rec["points"])
        row["equilibration"] = dict(
            plan=rec.get("plan"),
            min_burn_in_over_tau_production=min(
                q["burn_in_over_tau_production"] for q in rec["points"]
            ),
            max_tau_int_production=max(q["tau_int_production"] for q in rec["points"]),
        )
        table.append(row)
    if FSS.exists():
        fss = json.loads(FSS.read_text())
        pts = [q for q in fss["points"] if q["D"] == 2 and q["k"] == K and q["study"] == "fss"]
        row = dict(T=1.0, source="spatial_fss.json (L/k = 4, 8 only)", **_fss_pair(pts))
        row["starts"] = _starts(pts)
        table.append(row)
    for row in table:
        T = row["T"]
        row["crossover_variable"] = [c * math.sqrt(T) for c in CELLS]  # (L/k) sqrt(T)
        row["ginzburg"] = ginzburg_distance(T, K)
        row["zero_mode_one_loop"] = zero_mode_crossing(row["crossover_variable"][0])
    law = _gstar_small_T(table)
    # the small-x end: weighted means over the temperatures with (L/k) sqrt(T) <= 0.4 for the
    # smaller size (x_c = 0.34), against the two classes
    small = [r for r in table if r["crossover_variable"][0] <= 0.4 + 1e-9]
    small = [r for r in small if "value" in r.get("gamma_over_nu", {})]
    small = [r for r in small if "value" in r.get("beta_over_nu", {})]
    small_x = dict(T=[r["T"] for r in small])
    for name in ("gamma_over_nu", "beta_over_nu"):
        if not small:
            break
        v = np.array([r[name]["value"] for r in small])
        e = np.array([r[name]["se"] for r in small])
        w = 1 / e**2
        m, se = float(np.sum(w * v) / np.sum(w)), float(1 / np.sqrt(np.sum(w)))
        small_x[name] = dict(
            value=m,
            se=se,
            z_mean_field=(m - sp.UNIVERSALITY_CLASSES["mean_field"][name]) / se,
            z_2d_ising=(m - sp.UNIVERSALITY_CLASSES["2d_ising"][name]) / se,
        )
    payload["analysis"] = dict(
        rule="Binder crossings: of the sign changes of U_8 - U_4 (linear interpolation) the "
        "one at the largest U locates the crossing and picks the grid point nearest it; "
        "quadratic through that point and its two neighbours per size "
        "(lattice_binder_crossings with G_range; the 5-point quadratic kept as five_point); "
        "gamma/nu from chi' = N<M^2>, beta/nu from <|M|> on the same three points "
        "(fss_exponent at G*, SE of G* included); local exponents between neighbouring "
        "couplings: gamma against 1 - G/G*(T), nu against G*(T)/G - 1 (the OZ laws' exact "
        "forms); only couplings with 0 < eps = 1 - G/G* <= 0.5 and (where recorded) Binder "
        "U <= 3 SE; the chord is first to last used coupling",
        classes=sp.UNIVERSALITY_CLASSES,
        table=table,
        small_T_law=law,
        small_x=small_x,
        effective_exponents=_reference(table, law),
    )
    _write(out, payload)
    for r in table:
        g = r.get("gamma_over_nu", {})
        b = r.get("beta_over_nu", {})
        print(
            f"T={r['T']:g} x={r['crossover_variable']} G*={r['G_star']:.4f}±{r['G_star_se']:.4f}"
            f" U*={r['binder_star']:.4f}±{r['binder_star_se']:.4f} "
            f"(zero mode, one loop {r['zero_mode_one_loop']['binder_star']:.4f}) "
            f"g/n={g.get('value', np.nan):.3f}±{g.get('se', np.nan):.3f} "
            f"b/n={b.get('value', np.nan):.3f}±{b.get('se', np.nan):.3f}"
        )
    print("small-T law", law)
    print("small x", small_x)
    for r in payload["analysis"]["effective_exponents"]:
        if "G_star" in r:
            print(r["source"], f"G*={r['G_star']:.4f}±{r['G_star_se']:.4f} ({r['G_star_from']})")
        if "note" in r:
            print("   ", r["note"])
            continue
        print(
            f"   chord eps {r['eps'][-1]:.3f}-{r['eps'][0]:.3f}: gamma "
            f"{r['gamma_eff_chord']:.3f}±{r['gamma_eff_chord_se']:.3f} "
            f"nu {r['nu_eff_chord']:.3f}±{r['nu_eff_chord_se']:.3f}"
        )
        for e, g, gs, n, ns in zip(
            r["eps_mid_over_gi"], r["gamma_eff"], r["gamma_eff_se"], r["nu_eff"], r["nu_eff_se"]
        ):
            print(f"   eps/Gi={e:8.3f} gamma={g:.3f}±{gs:.3f} nu={n:.3f}±{ns:.3f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("run", "analyse"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--temperatures", type=float, nargs="*", default=None)
    args = p.parse_args()
    out = args.out or (Path("/tmp/spatial_crossover_quick.json") if args.quick else OUT)
    if args.action == "run":
        run(args.quick, out, tuple(args.temperatures or TEMPERATURES))
    else:
        analyse(out)


if __name__ == "__main__":
    main()
