r"""Kibble–Zurek study of the patch model's spatial transition (issue 18, item 6).

The measurement behind the ``kibble_zurek`` report experiment at larger size and a longer
range of quench times (``gltheory.experiments.kibble_zurek``; the method is in
``docs/theory/spatial.md#kibble-zurek``):

1. ``kz_sweep``: the two-uniform-image patch model (D = 2, k = 3, L = cells * k, OU) generated
   by ``gl.PredictorCorrector(n, 1, rho)`` for several corrector counts n, tau_Q =
   (1 + n rho)/2 in reduced relaxation time; xi(t) of the denoised field (integrated estimator)
   with jackknife errors over trajectory blocks. (The recorded JSON of session 6 also holds
   "xi_2nd", the second-moment estimator, all zero: it needs S(0), which the connected field
   removes; the code no longer records it.)
2. ``kz_analysis``: the KZ exponent from the collapse, from xi at the crossing G = G* and
   from its excess over the short-range xi_0, the adiabatic slope well above t*, the
   coarsening slope at the end.
3. ``dynamic_exponent``: z from tau_int of M^2 in frozen-time runs at G* for several L/k.
   G* is ``--g-star``, by default the finite-size scaling study's
   (``scripts/spatial_fss.json`` ``["analysis"]["G_star"]``), recorded in ``"g_star"`` with
   its source. ``--z-key`` names the run's JSON key (default ``"z"``).
4. ``combine``: ``"z"`` (``--z-key``) from the z runs named by ``--z-sources``, per L/k the
   run with the longest series; each source stays in the JSON (its fit recomputed with the
   current rule of ``kibble_zurek._z_fit``).
5. ``sensitivity``: ``"z_g_star_sensitivity"``, z of the runs named by ``--z-sources`` (the
   same sizes at several G) and half its spread between the extreme G.

The recorded z (session 7): ``--parts z`` with the defaults (L/k = 4, 8, 16, 16 replicas,
series 15000 tau', burn-in 2500 tau') gave tau' = 361 at L/k = 16, a series of 42 tau, under
the 50 tau of the estimator's reliability flag; L/k = 16 was then rerun alone with a series
of 25000 tau' and a burn-in of 3750 tau'::

    nice -n 10 .venv/bin/python scripts/kz_study.py --resume --parts z
    nice -n 10 .venv/bin/python scripts/kz_study.py --resume --parts z --z-key z_L16_long \
        --z-cells 16 --z-samples 12500 --z-burn 150000
    .venv/bin/python scripts/kz_study.py --resume --parts combine --z-sources z z_L16_long
    .venv/bin/python scripts/kz_study.py --resume --parts combine \
        --z-sources z_series_15000 z_L16_long  # after the SE rule changed (see the notes)
    for g in 6.614 7.059; do nice -n 10 .venv/bin/python scripts/kz_study.py --resume \
        --parts z --g-star $g --z-key z_sens_G$g --z-cells 4 8 --z-samples 2500 \
        --z-burn 28000; done  # and the same at G* with --z-key z_sens_Gstar_short
    .venv/bin/python scripts/kz_study.py --resume --parts sensitivity --z-sources \
        z_sens_G6.614 z_sens_Gstar_short z_sens_G7.059

Results are written to ``--out`` (JSON, atomically) after every run (every L/k for z), so an
interrupted study keeps what it measured. ``--resume`` merges into the JSON at ``--out``
(each run's config, parts, wall time and load are appended to ``"runs"``); a z part that is
resumed with the same parameters continues after the sizes already done, and a z result with
other parameters is kept under ``"z_at_<G*>"`` before the new one replaces it. Run it niced::

    nice -n 10 .venv/bin/python scripts/kz_study.py --out scripts/kz_study.json
"""

import argparse
import datetime
import json
import pathlib
import time

import jax

from gltheory._io import atomic_write_json
from gltheory.experiments import kibble_zurek as kz

FSS_JSON = pathlib.Path(__file__).resolve().parent / "spatial_fss.json"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=int, default=16)
    p.add_argument("--window", type=int, default=3)
    p.add_argument("--n-traj", type=int, default=32)
    p.add_argument("--blocks", type=int, default=8)
    p.add_argument("--steps", type=int, default=160)
    p.add_argument("--t-max", type=float, default=1.5)
    p.add_argument("--t-min", type=float, default=0.1)
    p.add_argument("--rho", type=float, nargs="+", default=[2.0])
    p.add_argument("--correctors", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64])
    p.add_argument(
        "--g-star",
        type=float,
        default=None,
        help="G* (default: scripts/spatial_fss.json analysis.G_star, else the experiment's)",
    )
    p.add_argument("--z-cells", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--z-replicas", type=int, default=16)
    p.add_argument("--z-samples", type=int, default=7500)
    p.add_argument("--z-thin", type=int, default=80)
    p.add_argument("--z-burn", type=int, default=100000)
    p.add_argument("--z-dt", type=float, default=0.025)
    p.add_argument("--z-blocks", type=int, default=4, help="jackknife blocks of replicas")
    p.add_argument("--z-key", default="z", help="the JSON key of this z run")
    p.add_argument(
        "--z-sources",
        nargs="+",
        default=[],
        help="part 'combine': z runs (JSON keys) to combine into --z-key, per L/k the longest "
        "series (a source named --z-key is first renamed --z-key + '_series_<tau>')",
    )
    p.add_argument(
        "--parts", nargs="*", default=["sweep", "analysis", "z"], help="what to run, in order"
    )
    p.add_argument("--resume", action="store_true", help="start from the JSON at --out")
    p.add_argument("--z-from", default=None, help="take the z result from this JSON")
    p.add_argument("--seed", type=int, default=18)
    p.add_argument("--out", default="scripts/kz_study.json")
    p.add_argument("--note", default=None, help="text appended to the JSON's notes")
    args = p.parse_args(argv)
    g_star_source = _resolve_g_star(args)

    key = jax.random.PRNGKey(args.seed)
    k_sweep, k_z = jax.random.split(key)
    run_log = {
        "parts": list(args.parts),
        "config": vars(args),
        "g_star_source": g_star_source,
        "started_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "load_at_start": _load(),
    }
    result = {"config": vars(args), "load_at_start": run_log["load_at_start"]}
    if args.resume:
        with open(args.out, encoding="utf-8") as f:
            result = json.load(f)
    result.setdefault("runs", []).append(run_log)
    if args.note:
        result["notes"] = (result.get("notes", "") + " " + args.note).strip()
    if args.z_from:
        with open(args.z_from, encoding="utf-8") as f:
            result["z"] = json.load(f)["z"]
    t_start = time.perf_counter()

    def save(partial=None):
        if partial is not None:
            result["sweep"] = partial
            print(
                f"n = {partial['n_corrector'][-1]:4d}  tau_Q = {partial['tau_q'][-1]:7.2f}  "
                f"{partial['wall_s'][-1]:7.1f} s",
                flush=True,
            )
        run_log["wall_s"] = time.perf_counter() - t_start
        if not args.resume:
            result["wall_s_total"] = run_log["wall_s"]
        atomic_write_json(args.out, result)

    if "sweep" in args.parts:
        _sweep(args, k_sweep, save)
    if "analysis" in args.parts:
        _analysis(args, result, save)
    if "z" in args.parts:
        _z(args, k_z, result, save)
    if "combine" in args.parts:
        _combine(args, result, save)
    if "sensitivity" in args.parts:
        _sensitivity(args, result, save)
    run_log["load_at_end"] = _load()
    if not args.resume:
        result["load_at_end"] = run_log["load_at_end"]
    save()


def _resolve_g_star(args) -> str:
    """Fill ``args.g_star`` when not given; return where it came from."""
    if args.g_star is not None:
        return "--g-star"
    if FSS_JSON.is_file():
        ana = json.loads(FSS_JSON.read_text(encoding="utf-8"))["analysis"]
        args.g_star = float(ana["G_star"])
        return f"scripts/spatial_fss.json analysis.G_star = {ana['G_star']} +- {ana['G_star_se']}"
    args.g_star = kz.KibbleZurekConfig().g_star
    return "KibbleZurekConfig.g_star (scripts/spatial_fss.json not found)"


def _sweep(args, k_sweep, save):
    kz.kz_sweep(
        k_sweep,
        window=args.window,
        cells=args.cells,
        n_traj=args.n_traj,
        n_blocks=args.blocks,
        n_steps=args.steps,
        t_max=args.t_max,
        t_min=args.t_min,
        n_correctors=tuple(args.correctors),
        rho=tuple(args.rho),
        on_result=save,
    )


def _analysis(args, result, save):
    sweep = result["sweep"]
    ana = kz.kz_analysis(sweep, g_star=args.g_star)
    result["analysis"] = ana
    save()
    c, cr, ex = ana["collapse"], ana["kz_crossing"], ana["kz_crossing_excess"]
    print(
        f"t* = {ana['t_star']:.3f}; collapse a = {c['a']:.3f} +- {c['a_se']:.3f}, "
        f"b = {c['b']:.3f} +- {c['b_se']:.3f} (cost {c['cost']:.2f}); crossing slope "
        f"{cr['slope']:.3f} +- {cr['se']:.3f}; excess over xi_0 = {ex['xi_0']:.3f}: "
        f"{ex['slope']:.3f} +- {ex['se']:.3f}; adiabatic {ana['adiabatic']['slope']:.3f} "
        f"+- {ana['adiabatic']['se']:.3f} at G = {ana['adiabatic']['G']:.2f}; coarsening "
        f"{ana['coarsening']['slope']:.3f} +- {ana['coarsening']['se']:.3f}",
        flush=True,
    )


def _z(args, k_z, result, save):
    params = {
        "g_star": float(args.g_star),
        "window": args.window,
        "n_replicas": args.z_replicas,
        "n_burn": args.z_burn,
        "n_samples": args.z_samples,
        "thin": args.z_thin,
        "dt": args.z_dt,
        "n_blocks": args.z_blocks,
    }
    previous = result.get(args.z_key)
    if previous is not None and not (
        all(previous.get(k) == v for k, v in params.items())
        and previous.get("cells") == args.z_cells[: len(previous.get("cells", []))]
    ):
        _archive_z(result, args.z_key)
        previous = None
    t0 = time.perf_counter()
    load0 = _load()

    def on_result(partial):
        partial.update(load_at_start=load0, load_now=_load(), wall_s_run=time.perf_counter() - t0)
        result[args.z_key] = partial
        print(
            f"L/k = {partial['cells'][-1]}: tau' = {partial['tau'][-1]:.2f} +- "
            f"{partial['tau_se'][-1]:.2f}, series/tau = {partial['series_over_tau'][-1]:.1f}, "
            f"reliable {partial['reliable'][-1]}, {partial['wall_s'][-1]:.0f} s, load {load0} -> "
            f"{partial['load_now']}",
            flush=True,
        )
        save()

    dyn = kz.dynamic_exponent(
        k_z,
        g_star=args.g_star,
        window=args.window,
        cells=tuple(args.z_cells),
        n_replicas=args.z_replicas,
        n_burn=args.z_burn,
        n_samples=args.z_samples,
        thin=args.z_thin,
        dt=args.z_dt,
        n_blocks=args.z_blocks,
        on_result=on_result,
        previous=previous,
    )
    result[args.z_key] = {**result.get(args.z_key, {}), **dyn}
    save()
    print(
        f"z = {dyn.get('z', float('nan')):.3f} +- {dyn.get('z_se', float('nan')):.3f}; "
        f"pairwise {dyn.get('z_pairwise')}; tau' = {dyn['tau']}; reliable {dyn['reliable']}; "
        f"wall {dyn['wall_s']}",
        flush=True,
    )


def _combine(args, result, save):
    """z from several z runs: per L/k the run with the longest series (in tau' units)."""
    sources = list(args.z_sources)
    if args.z_key in sources:
        old = result.pop(args.z_key)
        name = f"{args.z_key}_series_{old['n_samples'] * old['thin'] * old['dt']:g}"
        result[name] = old
        sources[sources.index(args.z_key)] = name
    best = {}  # L/k -> (series, source, index)
    for src in sources:
        run = result[src]
        run.update(kz._z_fit(run["cells"], run["tau"], run["tau_loo"]))  # the current SE rule
        series = run["n_samples"] * run["thin"] * run["dt"]
        for i, c in enumerate(run["cells"]):
            if c not in best or series > best[c][0]:
                best[c] = (series, src, i)
    cells = sorted(best)
    per = ["tau_loo", "reliable", "series_over_tau", "burn_over_tau", "wall_s"]
    pick = {k: [result[best[c][1]][k][best[c][2]] for c in cells] for k in per}
    comb = kz._z_fit(cells, [result[best[c][1]]["tau"][best[c][2]] for c in cells], pick["tau_loo"])
    comb.update({k: pick[k] for k in per if k != "tau_loo"})
    comb["source"] = [best[c][1] for c in cells]
    comb["series_tau_prime"] = [best[c][0] for c in cells]
    for k in ("g_star", "window", "n_replicas", "dt", "n_blocks"):
        vals = {result[best[c][1]][k] for c in cells}
        if len(vals) != 1:
            raise ValueError(f"the sources differ in {k}: {vals}")
        comb[k] = vals.pop()
    result[args.z_key] = comb
    save()
    print(
        f"combined z = {comb['z']:.3f} +- {comb['z_se']:.3f}; pairwise {comb['z_pairwise']}; "
        f"tau' = {comb['tau']} from {comb['source']}; reliable {comb['reliable']}",
        flush=True,
    )


def _sensitivity(args, result, save):
    """The G* sensitivity of z: the z runs named by ``--z-sources`` (same sizes and series,
    different G), their z per G and half the spread between the lowest and highest G (the
    class study's rule for the uncertainty of G*)."""
    runs = [result[k] for k in args.z_sources]
    if len({(tuple(r["cells"]), r["n_samples"], r["thin"], r["n_burn"]) for r in runs}) != 1:
        raise ValueError("the sensitivity runs must share sizes and series")
    order = sorted(range(len(runs)), key=lambda i: runs[i]["g_star"])
    lo, hi = runs[order[0]], runs[order[-1]]
    sens = {
        "sources": [args.z_sources[i] for i in order],
        "cells": runs[0]["cells"],
        "G": [runs[i]["g_star"] for i in order],
        "z": [runs[i]["z"] for i in order],
        "z_se": [runs[i]["z_se"] for i in order],
        "half_spread": abs(hi["z"] - lo["z"]) / 2,
    }
    result["z_g_star_sensitivity"] = sens
    save()
    print(f"G* sensitivity: {sens}", flush=True)


def _archive_z(result, key):
    """Move the recorded z result (and its session-6 side keys) to ``"z_at_<G*>"``."""
    old = result.pop(key)
    side = {k: result.pop(k) for k in ("z_config", "z_load", "wall_s_z") if k in result}
    g = old.get("g_star", side.get("z_config", {}).get("g_star"))
    name = f"z_at_{g:g}" if g is not None else "z_old"
    while name in result:
        name += "_"
    result[name] = {"z": old, **side}
    print(f"the previous z result is kept under {name!r}", flush=True)


def _load():
    with open("/proc/loadavg", encoding="utf-8") as f:
        return f.read().split()[:3]


if __name__ == "__main__":
    main()
