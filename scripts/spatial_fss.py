"""Finite-size scaling study of the patch model's frozen-time transition (gltheory.spatial).

    python scripts/spatial_fss.py run --part B & python scripts/spatial_fss.py run --part C &
    python scripts/spatial_fss.py run --part D; python scripts/spatial_fss.py merge
    python scripts/spatial_fss.py seed; python scripts/spatial_fss.py run --part E;
    python scripts/spatial_fss.py merge
    (options: --quick, --parts-dir DIR, --out PATH)

Frozen-time Langevin in the reduced variables (`docs/theory/spatial.md#reduction`), T = 1,
float32, dt = 0.025. Three studies (`docs/theory/spatial.md#universality-class`):

- (a) the k-collapse: U, chi, M at equal (G, L/k) for k in {3, 5, 7}, L/k in {4, 8}, three G
  around the crossing (L/k = 8 for k = 5, 7 in part E);
- (b) FSS at k = 3, L/k in {4, 8, 16} on a G grid around G*;
- (c) the D = 1 control, k = 3, L/k in {8, 16, 32} (no crossing expected).

Equilibration: for every (D, k, L/k) a pilot (`gltheory.spatial.equilibration_plan`, ordered
start, at the grid's G nearest the previous crossing) measures tau_int of |M|; every point then
starts ordered (random sign per replica) with burn-in max(20 tau_int, floor) and thinning
tau_int / 2, and records M at every sample, from which tau_int is re-measured on the production
series and U is computed separately on the first and second halves of the samples. At the
largest L near G* (and at L/k = 8) a disordered start is run as well.

The work is split in parts that run as separate processes (one core each; XLA's CPU loop here is
single-threaded): part C is L/k = 16 (long runs, 32 replicas), part B the rest of D = 2, part D
the D = 1 control (part B's D = 1 configurations). Part A, a first L/k = 16 attempt with the
rule's burn-in, failed the ordered/disordered check and is kept as ``superseded_points``.
Recorded run: 57 min wall on 2 shared cores (load 9-23); the k-collapse at L/k = 8 (k = 5, 7,
the last configurations of part B) was cut for time there and run as part E (31 min wall, one
niced process, load 4-6.4), with the L/k = 16, G = 6.8 disordered start again with a 250 000-step
burn-in (it replaces part C's); its last configuration, k = 5 at L/k = 16, G = 6.8, ran
afterwards in the same part (866 s wall including its pilot, load 2-4), then k = 7 at
L/k = 16, G = 6.8 (3 621 s, mostly beside the CI suite).
Each part writes its JSON file (atomically) after every point and skips points already there (so
an interrupted run resumes).
``merge`` combines the parts into ``scripts/spatial_fss.json`` and adds the analysis
(`gltheory.spatial.fss_analysis`), and the analysis again with each k = 3 disordered point in
place of its ordered one (``analysis_disordered_start``: the start systematic). ``seed`` writes
the part files that the parts dir lacks from the recorded JSON (its points and plans carry their
part), so a new part merges with the recorded points in a fresh checkout. ``--quick`` is a tiny
smoke configuration (about 1 min).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gltheory import spatial as sp

HERE = Path(__file__).resolve().parent
OUT = HERE / "spatial_fss.json"
PARTS = Path("/tmp/gltheory_spatial_fss")
DT = 0.025
G_GRID = (6.0, 6.4, 6.8, 7.2, 7.6)  # (b): around the first scan's G* = 6.71 +- 0.22
G_COLLAPSE = (6.0, 6.8, 7.6)  # (a): a subset of the grid, so k = 3 is shared with (b)
G_D1 = (2.0, 5.0, 9.0, 15.0)  # (c)
G_PILOT = 6.8

# fmt: off
# per (D, k, L/k): replicas, pilot replicas and steps, burn-in floor, measurement length in
# units of the pilot's tau_int (with a floor in steps)
SIZES_FULL = {
    "A": [
        dict(study="fss", D=2, k=3, cells=16, G=(6.8, 6.4, 7.2, 6.0, 7.6), R=64, pilot_R=32,
             n_pilot=24000, burn_floor=8000, meas_tau=40, meas_floor=20000, max_steps=100000,
             disordered=(6.8,)),
    ],
    "B": [
        dict(study="fss", D=2, k=3, cells=4, G=G_GRID, R=256, pilot_R=64, n_pilot=16000,
             burn_floor=4000, meas_tau=60, meas_floor=12000, max_steps=20000,
             disordered=(6.8,)),
        dict(study="fss", D=2, k=3, cells=8, G=G_GRID, R=128, pilot_R=64, n_pilot=16000,
             burn_floor=8000, meas_tau=60, meas_floor=20000, max_steps=40000,
             disordered=(6.8,)),
        dict(study="collapse", D=2, k=5, cells=4, G=G_COLLAPSE, R=256, pilot_R=64,
             n_pilot=16000, burn_floor=4000, meas_tau=60, meas_floor=12000, max_steps=20000,
             disordered=()),
        dict(study="collapse", D=2, k=7, cells=4, G=G_COLLAPSE, R=128, pilot_R=64,
             n_pilot=16000, burn_floor=4000, meas_tau=60, meas_floor=12000, max_steps=20000,
             disordered=()),
        dict(study="control", D=1, k=3, cells=8, G=G_D1, R=256, pilot_R=64, n_pilot=8000,
             burn_floor=4000, meas_tau=60, meas_floor=8000, max_steps=12000, disordered=()),
        dict(study="control", D=1, k=3, cells=16, G=G_D1, R=256, pilot_R=64, n_pilot=8000,
             burn_floor=4000, meas_tau=60, meas_floor=8000, max_steps=12000, disordered=()),
        dict(study="control", D=1, k=3, cells=32, G=G_D1, R=256, pilot_R=64, n_pilot=8000,
             burn_floor=4000, meas_tau=60, meas_floor=8000, max_steps=12000, disordered=()),
        dict(study="collapse", D=2, k=5, cells=8, G=G_COLLAPSE, R=64, pilot_R=32,
             n_pilot=12000, burn_floor=8000, meas_tau=60, meas_floor=16000, max_steps=30000,
             disordered=()),
        dict(study="collapse", D=2, k=7, cells=8, G=G_COLLAPSE, R=64, pilot_R=32,
             n_pilot=12000, burn_floor=8000, meas_tau=60, meas_floor=16000, max_steps=30000,
             disordered=()),
    ],
}
# part C: L/k = 16 again, long. Part A's runs (51 200 steps, 64 replicas: burn-in 17 068 steps
# = 20 tau_int of the pilot) disagreed between ordered and disordered starts at G = 6.8
# (U = 0.627 +- 0.006 against 0.530 +- 0.023): they are kept in the JSON as "superseded".
SIZES_FULL["C"] = [
    dict(study="fss", D=2, k=3, cells=16, G=(6.8, 6.4, 7.2, 6.0, 7.6), R=32, pilot_R=32,
         n_pilot=24000, burn_floor=100000, meas_tau=0, meas_floor=60000, max_steps=160000,
         disordered=(6.8,), save_states=True),
]
# part D: the D = 1 control of part B, run as its own process (same keys, same points) when
# the shared machine's load (about 20) slowed part B down.
SIZES_FULL["D"] = [c for c in SIZES_FULL["B"] if c["D"] == 1]
# part E (session 7): (a) the k-collapse at L/k = 8 for k = 5, 7 (part B's configurations, cut
# there for time; k = 7 with G = 6.8 first); (b) the L/k = 16, k = 3, G = 6.8 disordered start
# again with a 250 000-step burn-in (part C's 100 000 left it 2 SE below the ordered start): it
# replaces part C's disordered point, which is kept in ``superseded_points``; (c) L/k = 16,
# k = 5 at G = 6.8 (one G: the collapse only) with part C's rule. A configuration with a plan
# in another part (same D, k, L/k) reuses it; "starts" restricts the starts run at each G.
_B8 = {c["k"]: c for c in SIZES_FULL["B"] if c["D"] == 2 and c["cells"] == 8 and c["k"] > 3}
SIZES_FULL["E"] = [
    _B8[5],
    dict(SIZES_FULL["C"][0], G=(6.8,), starts=("disordered",), burn_floor=250000,
         max_steps=310000),
    dict(_B8[7], G=(6.8, 6.0, 7.6)),
    dict(SIZES_FULL["C"][0], study="collapse", k=5, G=(6.8,), disordered=(),
         save_states=False),
    dict(SIZES_FULL["C"][0], study="collapse", k=7, G=(6.8,), disordered=(),
         save_states=False),
]
SIZES_QUICK = {
    "A": [
        dict(study="fss", D=2, k=3, cells=4, G=(6.4, 7.2), R=16, pilot_R=8, n_pilot=400,
             burn_floor=200, meas_tau=20, meas_floor=400, disordered=(6.4,)),
    ],
    "B": [
        dict(study="fss", D=2, k=3, cells=2, G=(6.4, 7.2), R=16, pilot_R=8, n_pilot=400,
             burn_floor=200, meas_tau=20, meas_floor=400, disordered=()),
        dict(study="control", D=1, k=3, cells=4, G=(4.0, 8.0), R=16, pilot_R=8, n_pilot=400,
             burn_floor=200, meas_tau=20, meas_floor=400, disordered=()),
    ],
}


# fmt: on


def _write(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=1, allow_nan=True))
    os.replace(tmp, path)


def _binder_from_trace(m: np.ndarray) -> tuple[float, float]:
    """U and its jackknife SE from a trace ``(n_samples, R)`` of M (replica time averages)."""
    m2 = np.mean(m**2, axis=0)
    m4 = np.mean(m**4, axis=0)
    r = m2.shape[0]
    full = 1 - np.mean(m4) / (3 * np.mean(m2) ** 2)
    loo2 = (np.sum(m2) - m2) / (r - 1)
    loo4 = (np.sum(m4) - m4) / (r - 1)
    vals = 1 - loo4 / (3 * loo2**2)
    return float(full), float(np.sqrt((r - 1) / r * np.sum((vals - vals.mean()) ** 2)))


def _point(cfg: dict, G: float, start: str, plan: dict, key) -> dict:
    tau_steps = plan["tau_int"] / DT
    n_burn = int(max(plan["n_burn"], cfg["burn_floor"]))
    thin = int(max(1, plan["thin"]))
    meas = int(max(cfg["meas_tau"] * tau_steps, cfg["meas_floor"]))
    if "max_steps" in cfg:  # the time budget: cap the measurement, keep the burn-in
        meas = int(max(min(meas, cfg["max_steps"] - n_burn), cfg["meas_floor"]))
    n_samples = max(8, meas // thin)
    t0 = time.perf_counter()
    run = sp.lattice_langevin(
        key,
        G,
        window=cfg["k"],
        cells=cfg["cells"],
        lattice_ndim=cfg["D"],
        n_replicas=cfg["R"],
        n_burn=n_burn,
        n_samples=n_samples,
        thin=thin,
        dt=DT,
        start=start,
        structure_factor=False,
        record=True,
        dtype=jnp.float32,
    )
    st = sp.lattice_statistics(run)
    wall = time.perf_counter() - t0
    if cfg.get("save_states"):  # to extend the run later (start=phi)
        np.save(
            PARTS / f"phi_D{cfg['D']}_k{cfg['k']}_c{cfg['cells']}_G{G:g}_{start}.npy",
            np.asarray(run.phi),
        )
    trace = np.asarray(run.trace, np.float64)  # (n_samples, R)
    ac = sp.integrated_autocorrelation_time(np.abs(trace))
    half = n_samples // 2
    u1, u1_se = _binder_from_trace(trace[:half])
    u2, u2_se = _binder_from_trace(trace[half:])
    n = st.n_sites
    m2 = np.asarray(run.m2, np.float64)
    chi2 = n * m2
    return dict(
        study=cfg["study"],
        D=cfg["D"],
        k=cfg["k"],
        cells=cfg["cells"],
        L=cfg["cells"] * cfg["k"],
        G=float(G),
        start=start,
        R=cfg["R"],
        n_burn=n_burn,
        thin=thin,
        n_samples=n_samples,
        dt=DT,
        binder=st.binder,
        binder_se=st.binder_se,
        chi=st.chi,
        chi_se=st.chi_se,
        chi_full=float(chi2.mean()),
        chi_full_se=float(chi2.std(ddof=1) / np.sqrt(len(chi2))),
        m_abs=st.m_abs,
        m_abs_se=st.m_abs_se,
        m2=st.m2,
        m2_se=st.m2_se,
        m4=st.m4,
        m4_se=st.m4_se,
        n_sites=n,
        tau_int_production=ac.tau_int * thin * DT,
        tau_int_production_reliable=ac.reliable,
        burn_in_over_tau_production=n_burn * DT / max(ac.tau_int * thin * DT, 1e-12),
        binder_first_half=u1,
        binder_first_half_se=u1_se,
        binder_second_half=u2,
        binder_second_half_se=u2_se,
        site_updates=float(n) * cfg["R"] * (n_burn + n_samples * thin),
        wall_s=wall,
        load_average_1min=os.getloadavg()[0],
    )


def _key_of(p: dict) -> tuple:
    """The identity of a point: (D, k, L/k, G, start)."""
    return (p["D"], p["k"], p["cells"], round(p["G"], 6), p["start"])


def run_part(part: str, quick: bool, parts_dir: Path) -> None:
    sizes = (SIZES_QUICK if quick else SIZES_FULL)[part]
    path = parts_dir / f"{'quick_' if quick else ''}part_{part}.json"
    payload = json.loads(path.read_text()) if path.exists() else dict(plans=[], points=[])
    done = {_key_of(p) for p in payload["points"]}
    plans = {(p["D"], p["k"], p["cells"]): p for p in payload["plans"]}
    other = {}  # the plans of the other parts (a configuration measured there reuses its plan)
    for q in sorted(parts_dir.glob(f"{'quick_' if quick else ''}part_?.json")):
        if q != path:
            for pl in json.loads(q.read_text())["plans"]:
                other.setdefault((pl["D"], pl["k"], pl["cells"]), pl)
    t_part = time.perf_counter()
    base = jax.random.key(20261204)
    for cfg in sizes:
        sk = (cfg["D"], cfg["k"], cfg["cells"])
        cfg_key = jax.random.fold_in(base, 10000 * cfg["D"] + 100 * cfg["k"] + cfg["cells"])
        if part == "E":  # new noise: part C's keys would replay its runs' noise
            cfg_key = jax.random.fold_in(cfg_key, 5)
        if sk not in plans and sk in other:
            plans[sk] = {n: v for n, v in other[sk].items() if n != "part"}
            plans[sk]["copied_from_part"] = other[sk].get("part")
            payload["plans"] = list(plans.values())
            _write(path, payload)
        if sk not in plans:
            G_p = min(cfg["G"], key=lambda g: abs(g - G_PILOT))
            t0 = time.perf_counter()
            pl = sp.equilibration_plan(
                jax.random.fold_in(cfg_key, 0),
                G_p,
                window=cfg["k"],
                cells=cfg["cells"],
                lattice_ndim=cfg["D"],
                n_replicas=cfg["pilot_R"],
                n_pilot=cfg["n_pilot"],
                dt=DT,
                dtype=jnp.float32,
            )
            plans[sk] = dict(
                D=cfg["D"],
                k=cfg["k"],
                cells=cfg["cells"],
                G=G_p,
                n_pilot=cfg["n_pilot"],
                pilot_R=cfg["pilot_R"],
                tau_int=pl.tau_int,
                n_burn=pl.n_burn,
                thin=pl.thin,
                reliable=pl.reliable,
                wall_s=time.perf_counter() - t0,
            )
            payload["plans"] = list(plans.values())
            _write(path, payload)
            print(f"plan {sk}: {plans[sk]}", flush=True)
        plan = plans[sk]
        jobs = [(G, "ordered") for G in cfg["G"]]
        for G in cfg["disordered"]:  # right after the ordered run at the same G
            jobs.insert(jobs.index((G, "ordered")) + 1, (G, "disordered"))
        if "starts" in cfg:
            jobs = [j for j in jobs if j[1] in cfg["starts"]]
        for i, (G, start) in enumerate(jobs):
            probe = dict(D=cfg["D"], k=cfg["k"], cells=cfg["cells"], G=G, start=start)
            if _key_of(probe) in done:
                continue
            key = jax.random.fold_in(cfg_key, 1 + i)
            p = _point(cfg, G, start, plan, key)
            payload["points"].append(p)
            done.add(_key_of(p))
            payload["part_wall_s"] = payload.get("part_wall_s", 0.0) + p["wall_s"]
            _write(path, payload)
            print(
                f"D={p['D']} k={p['k']} L/k={p['cells']:2d} G={G:5.2f} {start:10s} "
                f"U={p['binder']:.4f}±{p['binder_se']:.4f} chi={p['chi']:.3f}±{p['chi_se']:.3f} "
                f"|M|={p['m_abs']:.4f} tau_prod={p['tau_int_production']:.2f} "
                f"U halves {p['binder_first_half']:.3f}/{p['binder_second_half']:.3f} "
                f"({p['wall_s']:.0f} s, load {p['load_average_1min']:.1f})",
                flush=True,
            )
    print(f"part {part} done in {time.perf_counter() - t_part:.0f} s", flush=True)


def seed(parts_dir: Path, out: Path) -> None:
    """Write the part files that ``parts_dir`` lacks from the recorded study ``out`` (its points,
    superseded points and plans carry their part), so that ``merge`` keeps them."""
    rec = json.loads(out.read_text())
    if rec.get("quick"):
        raise SystemExit(f"{out} is a quick run: nothing to seed")
    for part in ("A", "B", "C", "D", "E"):
        path = parts_dir / f"part_{part}.json"
        pts = [q for q in rec["points"] + rec["superseded_points"] if q.get("part") == part]
        pls = [q for q in rec["plans"] if q.get("part") == part]
        if path.exists() or not (pts or pls):
            continue
        # a point that a later part replaced goes back to its own part
        for q in pts + pls:
            q.pop("superseded_by", None)
        payload = dict(plans=pls, points=pts, part_wall_s=rec["part_wall_s"].get(part))
        _write(path, payload)
        print(f"seeded {path} ({len(pts)} points, {len(pls)} plans)")


def merge(parts_dir: Path, out: Path, quick: bool) -> None:
    prefix = "quick_" if quick else ""
    plans, points, superseded, walls = [], [], [], {}
    for part in ("A", "B", "C", "D", "E"):
        path = parts_dir / f"{prefix}part_{part}.json"
        if not path.exists():
            continue
        d = json.loads(path.read_text())
        for q in d["plans"] + d["points"]:
            q["part"] = part
        plans += d["plans"]
        if part == "E":  # part E's points replace those of the earlier parts with their key
            keys = {_key_of(q) for q in d["points"]}
            for q in [q for q in points if _key_of(q) in keys]:
                points.remove(q)
                superseded.append(dict(q, superseded_by="E"))
        # part A (L/k = 16, short) failed the ordered/disordered check and was replaced by C
        seen = {_key_of(q) for q in points}
        new = [q for q in d["points"] if _key_of(q) not in seen]  # B and D share D = 1 points
        (superseded if part == "A" and not quick else points).extend(new)
        walls[part] = d.get("part_wall_s")
    payload = dict(
        name="spatial_fss",
        command="python scripts/spatial_fss.py run --part B & "
        "python scripts/spatial_fss.py run --part C & "
        "python scripts/spatial_fss.py run --part D; python scripts/spatial_fss.py merge",
        quick=quick,
        temperature=1.0,
        dt=DT,
        dtype="float32",
        sizes=SIZES_QUICK if quick else SIZES_FULL,
        plans=plans,
        points=points,
        superseded_points=superseded,
        part_wall_s=walls,
        cpu_count=os.cpu_count(),
    )
    if hasattr(sp, "fss_analysis"):
        payload["analysis"] = sp.fss_analysis(points)
        # the start systematic: the analysis again with each disordered point of the FSS window
        # (k = 3, D = 2) in place of the ordered point with its (L/k, G)
        sens = []
        for q in points:
            if q["start"] != "disordered" or q["D"] != 2 or q["k"] != 3:
                continue
            swap = [
                dict(q, start="ordered") if _key_of(o) == _key_of(dict(q, start="ordered")) else o
                for o in points
                if o is not q
            ]
            a = sp.fss_analysis(swap)
            sens.append(
                dict(
                    cells=q["cells"],
                    G=q["G"],
                    n_burn=q["n_burn"],
                    **{n: a.get(n) for n in ("G_star", "G_star_se", "binder_star")},
                    binder_star_se=a.get("binder_star_se"),
                    crossings=a.get("crossings"),
                    estimates=a.get("estimates"),
                    verdict=a.get("verdict", {}).get("verdict"),
                    verdict_max_abs_z=a.get("verdict", {}).get("max_abs_z"),
                )
            )
        payload["analysis_disordered_start"] = sens
    _write(out, payload)
    print(f"wrote {out} ({len(points)} points)")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("run", "merge", "seed"))
    p.add_argument("--part", choices=("A", "B", "C", "D", "E"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--parts-dir", type=Path, default=PARTS)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    if args.action == "run":
        if args.part is None:
            p.error("run needs --part A, B, C, D or E")
        run_part(args.part, args.quick, args.parts_dir)
    elif args.action == "seed":
        seed(args.parts_dir, args.out)
    else:
        merge(args.parts_dir, args.out, args.quick)


if __name__ == "__main__":
    main()
