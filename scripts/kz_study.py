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

Results are written to ``--out`` (JSON, atomically) after every run, so an interrupted
study keeps what it measured. Run it niced::

    nice -n 10 .venv/bin/python scripts/kz_study.py --out scripts/kz_study.json
"""

import argparse
import json
import time

import jax

from gltheory._io import atomic_write_json
from gltheory.experiments import kibble_zurek as kz


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
    p.add_argument("--g-star", type=float, default=kz.KibbleZurekConfig().g_star)
    p.add_argument("--z-cells", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--z-replicas", type=int, default=8)
    p.add_argument("--z-samples", type=int, default=1500)
    p.add_argument("--z-thin", type=int, default=120)
    p.add_argument("--z-burn", type=int, default=8000)
    p.add_argument(
        "--parts", nargs="*", default=["sweep", "analysis", "z"], help="what to run, in order"
    )
    p.add_argument("--resume", action="store_true", help="start from the JSON at --out")
    p.add_argument("--z-from", default=None, help="take the z result from this JSON")
    p.add_argument("--seed", type=int, default=18)
    p.add_argument("--out", default="scripts/kz_study.json")
    args = p.parse_args(argv)

    key = jax.random.PRNGKey(args.seed)
    k_sweep, k_z = jax.random.split(key)
    result = {"config": vars(args), "load_at_start": _load()}
    if args.resume:
        with open(args.out, encoding="utf-8") as f:
            result = {**json.load(f), "config_resume": vars(args)}
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
        result["wall_s_total"] = time.perf_counter() - t_start
        atomic_write_json(args.out, result)

    if "sweep" in args.parts:
        _sweep(args, k_sweep, save)
    if "analysis" in args.parts:
        _analysis(args, result, save)
    if "z" in args.parts:
        _z(args, k_z, result, save)
    result["load_at_end"] = _load()
    save()


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
    dyn = kz.dynamic_exponent(
        k_z,
        g_star=args.g_star,
        window=args.window,
        cells=tuple(args.z_cells),
        n_replicas=args.z_replicas,
        n_burn=args.z_burn,
        n_samples=args.z_samples,
        thin=args.z_thin,
    )
    result["z"] = dyn
    save()
    print(
        f"z = {dyn['z']:.3f} +- {dyn['z_se']:.3f}; tau' = {dyn['tau']}; "
        f"reliable {dyn['reliable']}; wall {dyn['wall_s']}",
        flush=True,
    )


def _load():
    with open("/proc/loadavg", encoding="utf-8") as f:
        return f.read().split()[:3]


if __name__ == "__main__":
    main()
