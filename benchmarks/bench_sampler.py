"""Throughput of the fast reverse-SDE sampler against diffrax, NumPy and two JAX baselines.

    python benchmarks/bench_sampler.py [--quick] [--out PATH]

Problems (OU process, Euler--Maruyama on ``time_grid(OU(), n_steps)``, float32):

1. ``two_point``: exact score of ``TwoPoint(1.0)`` (d = 1), batch 4096, 1000 steps;
2. ``lattice``: ``uniform_patch_score`` (3x3 window) on a periodic 64x64 lattice, batch 64,
   200 steps.

Cases (all ``jit``-ted, timed after a warm-up call, round-robin, best of the repeats):

- ``fast``: ``gltheory.sample`` with the default ``noise_block``;
- ``diffrax_unsafe[...]``: diffrax ``Euler`` + ``UnsafeBrownianPath`` + ``StepTo``, diffrax's
  fastest configuration (one key for the whole batch per step). The library's
  ``sample_diffrax(brownian="unsafe")`` is timed if it runs; the same solve is also built here
  with ``adjoint=DirectAdjoint()`` and ``ForwardMode()``; the fastest is the reference;
- ``diffrax_grid``: ``sample_diffrax(brownian="grid")``, the same increments as ``fast``;
- ``naive_per_step``: one ``jax.random.normal(fold_in(k_i, step))`` per trajectory per step,
  ``vmap``-ed inside a ``lax.scan`` over steps;
- ``floor[...]``: the noise floor. No score: a ``lax.scan`` that draws exactly ``fast``'s
  noise (same per-trajectory keys, same blocks; checked against ``trajectory_noise``) and does
  ``x = c0*x + c1*z``. Two ways of drawing the same numbers are timed and the cheaper is the
  floor: ``block`` (one ``vmap``-ed draw per block, as the sampler does) and ``chunked`` (the
  block drawn a few trajectories at a time with ``lax.map``, so that the generator's working
  set stays in cache). Generating only each step's row of the block was also tried: XLA hoists
  the block out of the inner loop, so it is the ``block`` computation again.
- ``drift_only``: the EM drift update with the same score and no noise (a bare ``lax.scan``),
  to split ``fast`` into noise + drift;
- ``numpy``: a Python loop over steps on NumPy arrays with ``Generator.standard_normal``
  (checked against ``gltheory.sample`` when fed the same increments).

Throughput is trajectory-steps per second: batch x steps / best wall time. Every figure, the
CPU time of the process (less sensitive than wall time to other processes on a shared
machine), the configuration and the environment go to ``benchmarks/results/bench_sampler.json``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import _harness as H
import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import gltheory

NAME = "bench_sampler"

CONFIGS = {
    "full": dict(
        tp_n=4096,
        tp_steps=1000,
        tp_repeats=9,
        tp_numpy_repeats=3,
        tp_sweep_blocks=(1, 8, 16, 32, 64, 128),
        tp_sweep_repeats=7,
        lat_n=64,
        lat_size=64,
        lat_window=3,
        lat_steps=200,
        lat_repeats=5,
        lat_numpy_repeats=2,
        lat_sweep_blocks=(1, 2, 4, 8, 32),
        lat_sweep_repeats=3,
        diffrax_adjoints=("DirectAdjoint", "ForwardMode"),
        pf_ode=True,
    ),
    "quick": dict(
        tp_n=4096,
        tp_steps=250,
        tp_repeats=5,
        tp_numpy_repeats=2,
        tp_sweep_blocks=(1, 32, 128),
        tp_sweep_repeats=3,
        lat_n=16,
        lat_size=32,
        lat_window=3,
        lat_steps=50,
        lat_repeats=3,
        lat_numpy_repeats=1,
        lat_sweep_blocks=(),
        lat_sweep_repeats=0,
        diffrax_adjoints=("DirectAdjoint",),
        pf_ode=False,
    ),
}
TARGETS = {"fast_over_diffrax_unsafe_min": 5.0, "fast_time_over_floor_max": 1.5}
FLOOR_CHUNK_ELEMENTS = 1 << 17  # 512 KiB of float32 per chunk of the noise block


# ----------------------------------------------------------------------------------------------
# the cases
# ----------------------------------------------------------------------------------------------


def make_fast(score_fn, process, *, noise_block=None, method="euler_maruyama"):
    return jax.jit(
        lambda key, x0, ts: (
            gltheory.sample(
                score_fn, process, key, x0, ts=ts, method=method, noise_block=noise_block
            ).x
        )
    )


def make_diffrax_library(score_fn, process, *, brownian, method="euler_maruyama"):
    return jax.jit(
        lambda key, x0, ts: gltheory.sampling.sample_diffrax(
            score_fn, process, key, x0, ts=ts, method=method, brownian=brownian
        )
    )


class _AdditiveNoise(diffrax.AbstractTerm):
    """g(t) dW for a scalar g (the term gltheory.sampling.sample_diffrax builds)."""

    g: Callable
    control: diffrax.AbstractPath

    def vf(self, t, y, args):
        return self.g(t)

    def contr(self, t0, t1, **kwargs):
        return self.control.evaluate(t0, t1)

    def prod(self, vf, control):
        return vf * control


ADJOINTS = {"DirectAdjoint": diffrax.DirectAdjoint, "ForwardMode": diffrax.ForwardMode}


def make_diffrax_unsafe(score_fn, process, *, adjoint: str):
    """diffrax Euler + UnsafeBrownianPath + StepTo, built as ``sample_diffrax(brownian="unsafe")``
    builds it, with an explicit ``adjoint`` (diffrax 0.7 refuses UnsafeBrownianPath under its
    default RecursiveCheckpointAdjoint)."""

    def run(key, x0, ts):
        keys = gltheory.trajectory_keys(key, x0.shape[0])
        t_start = ts[0]
        taus = t_start - ts
        drift = diffrax.ODETerm(
            lambda tau, y, args: process.reverse_drift(y, t_start - tau, score_fn(y, t_start - tau))
        )
        path = diffrax.UnsafeBrownianPath(
            shape=x0.shape, key=keys[0], levy_area=diffrax.BrownianIncrement
        )
        terms = diffrax.MultiTerm(drift, _AdditiveNoise(lambda tau: process.g(t_start - tau), path))
        sol = diffrax.diffeqsolve(
            terms,
            diffrax.Euler(),
            t0=taus[0],
            t1=taus[-1],
            dt0=None,
            y0=x0,
            stepsize_controller=diffrax.StepTo(ts=taus),
            saveat=diffrax.SaveAt(t1=True),
            max_steps=ts.shape[0] - 1,
            adjoint=ADJOINTS[adjoint](),
        )
        return sol.ys[0]

    return jax.jit(run)


def _em_drift(process, score_fn, x, ts, i):
    t = ts[i]
    h = t - ts[i + 1]
    return t, h, x + h * process.reverse_drift(x, t, score_fn(x, t))


def make_naive(score_fn, process):
    """One draw per trajectory per step: ``vmap(normal(fold_in(k_i, step)))`` in a scan."""

    def run(key, x0, ts):
        keys = gltheory.trajectory_keys(key, x0.shape[0])
        event = x0.shape[1:]

        def step(x, i):
            t, h, x = _em_drift(process, score_fn, x, ts, i)
            z = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, i), event, x.dtype))(
                keys
            )
            return x + process.g(t) * jnp.sqrt(h) * z, None

        return jax.lax.scan(step, x0, jnp.arange(ts.shape[0] - 1))[0]

    return jax.jit(run)


def make_drift_only(score_fn, process):
    """The EM drift update alone (no noise), in a bare scan."""

    def run(key, x0, ts):
        del key

        def step(x, i):
            return _em_drift(process, score_fn, x, ts, i)[2], None

        return jax.lax.scan(step, x0, jnp.arange(ts.shape[0] - 1))[0]

    return jax.jit(run)


def make_floor(n_steps: int, *, noise_block: int, variant: str):
    """No score: draw exactly ``gltheory.sample``'s noise and do ``x = c[0]*x + c[1]*z``.

    The sampler's noise: per-trajectory keys ``k_i = fold_in(key, i)``, noise key
    ``split(k_i)[0]``, block ``j`` = ``normal(fold_in(noise_key_i, j), (noise_block, *event))``.
    ``variant="block"`` draws a block for all trajectories at once; ``"chunked"`` draws it
    ``FLOOR_CHUNK_ELEMENTS`` numbers at a time (same numbers, smaller generator working set).
    """
    if variant not in ("block", "chunked"):
        raise ValueError(variant)
    nb = noise_block

    def run(key, x0, c):
        n, event = x0.shape[0], x0.shape[1:]
        keys = gltheory.trajectory_keys(key, n)
        noise_keys = jax.vmap(lambda k: jax.random.split(k, 2)[0])(keys)

        def draw(ks, j):  # (len(ks), nb, *event)
            return jax.vmap(
                lambda k: jax.random.normal(jax.random.fold_in(k, j), (nb,) + event, x0.dtype)
            )(ks)

        if variant == "chunked":
            chunk = max(1, min(n, FLOOR_CHUNK_ELEMENTS // (nb * math.prod(event))))
            while n % chunk:
                chunk -= 1

        def block(x, j, m):
            if variant == "block":
                zs = draw(noise_keys, j)
            else:
                ks = noise_keys.reshape((n // chunk, chunk) + noise_keys.shape[1:])
                zs = jax.lax.map(lambda kc: draw(kc, j), ks).reshape((n, nb) + event)
            x, _ = jax.lax.scan(lambda x, i: (c[0] * x + c[1] * zs[:, i], None), x, jnp.arange(m))
            return x

        n_full, rem = divmod(n_steps, nb)
        x = x0
        if n_full:
            x, _ = jax.lax.scan(lambda x, j: (block(x, j, nb), None), x, jnp.arange(n_full))
        if rem:
            x = block(x, n_full, rem)
        return x

    return jax.jit(run)


def numpy_em(score_np, x0, ts, *, seed=0, noise=None):
    """Euler--Maruyama for OU (f = -1, g^2 = 2) in a Python loop over NumPy arrays (float32).

    ``noise`` (shape ``(n_steps, *x0.shape)``) replaces the generator, for the equality check.
    """
    rng = np.random.default_rng(seed)
    x = np.array(x0, dtype=np.float32)
    tsn = np.asarray(ts, dtype=np.float64)
    for i in range(tsn.shape[0] - 1):
        t = tsn[i]
        h = t - tsn[i + 1]
        a = math.exp(-t)
        b2 = -math.expm1(-2 * t)
        s = score_np(x, np.float32(a), np.float32(b2))
        z = rng.standard_normal(x.shape, dtype=np.float32) if noise is None else noise[i]
        x = x + np.float32(h) * (2 * s + x) + np.float32(math.sqrt(2 * h)) * z
    return x


def two_point_score_np(mu: np.ndarray):
    """Exact score of two deltas at +-mu (weight 1/2): (a mu tanh(a mu.x / b^2) - x) / b^2."""

    def s(x, a, b2):  # x: (n, d)
        m = np.tanh((a / b2) * (x @ mu))[:, None] * mu
        return (a * m - x) / b2

    return s


def patch_score_np(window: int):
    """uniform_patch_score with a periodic separable box sum built from np.roll."""
    r = window // 2

    def s(x, a, b2):  # x: (n, L, L)
        k = x
        for ax in (1, 2):
            acc = k
            for sh in range(1, r + 1):
                acc = acc + np.roll(k, sh, axis=ax) + np.roll(k, -sh, axis=ax)
            k = acc
        return (a * np.tanh((a / b2) * k) - x) / b2

    return s


# ----------------------------------------------------------------------------------------------
# problems
# ----------------------------------------------------------------------------------------------


@dataclass
class Problem:
    name: str
    title: str
    process: gltheory.AbstractProcess
    score_fn: Callable
    score_np: Callable
    x0: jax.Array
    ts: jax.Array
    sites: int = 1
    _cache: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.x0.shape[0]

    @property
    def steps(self) -> int:
        return self.ts.shape[0] - 1

    @property
    def default_block(self) -> int:
        """The sampler's default ``noise_block`` for this event shape."""
        return gltheory.sampling.default_noise_block(self.x0.shape[1:])

    def fn(self, kind: str, **kw) -> Callable:
        """The jitted case ``kind``, built once per problem (so compilations are shared)."""
        if kind == "fast":
            kw = {"noise_block": self.default_block, "method": "euler_maruyama", **kw}
        k = (kind, tuple(sorted(kw.items())))
        if k not in self._cache:
            p, sf = self.process, self.score_fn
            self._cache[k] = {
                "fast": lambda: make_fast(sf, p, **kw),
                "diffrax_library": lambda: make_diffrax_library(sf, p, **kw),
                "diffrax_unsafe": lambda: make_diffrax_unsafe(sf, p, **kw),
                "naive": lambda: make_naive(sf, p),
                "drift_only": lambda: make_drift_only(sf, p),
                "floor": lambda: make_floor(self.steps, **kw),
            }[kind]()
        return self._cache[k]

    def case(self, kind: str, key, **kw) -> tuple[Callable, tuple]:
        third = jnp.array([0.999, 0.01], self.x0.dtype) if kind == "floor" else self.ts
        return self.fn(kind, **kw), (key, self.x0, third)


def two_point_problem(cfg, key) -> Problem:
    process, data = gltheory.OU(), gltheory.TwoPoint(1.0)
    n, steps = cfg["tp_n"], cfg["tp_steps"]
    return Problem(
        name="two_point",
        title=f"two-point (OU, TwoPoint(1.0), d=1, n={n}, {steps} EM steps)",
        process=process,
        score_fn=lambda x, t: gltheory.score(data, process, x, t),
        score_np=two_point_score_np(np.asarray(data.mu)),
        x0=jax.random.normal(jax.random.fold_in(key, 12345), (n,) + data.event_shape),
        ts=gltheory.time_grid(process, steps),
    )


def lattice_problem(cfg, key) -> Problem:
    process = gltheory.OU()
    n, L, steps, w = cfg["lat_n"], cfg["lat_size"], cfg["lat_steps"], cfg["lat_window"]
    return Problem(
        name="lattice",
        title=f"lattice (OU, uniform_patch_score window={w}, {L}x{L}, n={n}, {steps} EM steps)",
        process=process,
        score_fn=lambda x, t: gltheory.scores.uniform_patch_score(
            process, x, t, window=w, lattice_ndim=2
        ),
        score_np=patch_score_np(w),
        x0=jax.random.normal(jax.random.fold_in(key, 12345), (n, L, L)),
        ts=gltheory.time_grid(process, steps),
        sites=L * L,
    )


# ----------------------------------------------------------------------------------------------
# checks that the baselines compute what they claim
# ----------------------------------------------------------------------------------------------


def check_floor_noise(key) -> float:
    """The floor's noise is the sampler's: with c = (1, 1) from 0 it sums the increments."""
    n, event, steps, nb = 8, (3, 5), 70, 32
    ref = gltheory.sampling.trajectory_noise(key, steps, event, n=n, noise_block=nb).sum(0)
    err = 0.0
    for variant in ("block", "chunked"):
        got = make_floor(steps, noise_block=nb, variant=variant)(
            key, jnp.zeros((n,) + event), jnp.array([1.0, 1.0])
        )
        err = max(err, float(jnp.abs(got - ref).max()))
    return err


def check_numpy(prob: Problem, key, n: int, steps: int) -> float:
    """The NumPy loop, fed the sampler's increments, reproduces ``gltheory.sample``."""
    x0, ts = prob.x0[:n], gltheory.time_grid(prob.process, steps)
    z = gltheory.sampling.trajectory_noise(key, steps, x0.shape[1:], n=n)
    ref = gltheory.sample(prob.score_fn, prob.process, key, x0, ts=ts).x
    got = numpy_em(prob.score_np, x0, ts, noise=np.asarray(z))
    return float(np.abs(got - np.asarray(ref)).max())


# ----------------------------------------------------------------------------------------------
# running and reporting
# ----------------------------------------------------------------------------------------------


def _with_throughput(timing: dict, prob: Problem) -> dict:
    timing = dict(timing)
    ts_ = prob.n * prob.steps
    timing["traj_steps_per_s"] = ts_ / timing["best_s"]
    timing["traj_steps_per_s_median"] = ts_ / timing["median_s"]
    if prob.sites > 1:
        timing["site_steps_per_s"] = prob.sites * ts_ / timing["best_s"]
    return timing


def _best_of(timings: dict, prefix: str) -> str:
    return min((k for k in timings if k.startswith(prefix)), key=lambda k: timings[k]["best_s"])


def _diffrax_unsafe_cases(prob: Problem, key, adjoints) -> tuple[dict, str]:
    """The library's brownian="unsafe" if it runs, and the same solve with explicit adjoints."""
    cases = {}
    lib = prob.fn("diffrax_library", brownian="unsafe")
    try:
        jax.block_until_ready(lib(key, prob.x0, prob.ts))
        cases["diffrax_unsafe[library]"] = (lib, (key, prob.x0, prob.ts))
        status = "ok"
    except Exception as e:  # noqa: BLE001 - record why, fall back to the explicit adjoints
        status = f"{type(e).__name__}: {str(e).splitlines()[0]}"
    for name in adjoints:
        cases[f"diffrax_unsafe[{name}]"] = prob.case("diffrax_unsafe", key, adjoint=name)
    return cases, status


def _print_cases(title: str, timings: dict, ref: str, sites: int = 1) -> None:
    headers = ["case", "best ms", "median ms", "cpu ms", "traj-steps/s"]
    if sites > 1:
        headers.append("site-steps/s")
    headers.append(f"time / {ref}")
    rows = []
    for name, t in timings.items():
        row = [
            name,
            f"{1e3 * t['best_s']:.1f}",
            f"{1e3 * t['median_s']:.1f}",
            f"{1e3 * t['cpu_best_s']:.1f}",
            f"{t['traj_steps_per_s']:.3g}",
        ]
        if sites > 1:
            row.append(f"{t['site_steps_per_s']:.3g}")
        row.append(f"{t['best_s'] / timings[ref]['best_s']:.2f}")
        rows.append(row)
    print(f"\n== {title}")
    print(H.format_table(headers, rows))


def _ratio(t: dict, num: str, den: str | tuple[str, ...]) -> dict:
    """time(num) / time(den) (den: one case or a sum of cases), on wall and on CPU time."""
    den = (den,) if isinstance(den, str) else den
    fields = {"best": "best_s", "cpu": "cpu_best_s"}
    return {m: t[num][f] / sum(t[d][f] for d in den) for m, f in fields.items()}


def bench_problem(
    prob: Problem, cfg: dict, key, *, repeats: int, numpy_repeats: int, extra: bool
) -> dict:
    cases = {"fast": prob.case("fast", key)}
    dfx_cases, dfx_status = _diffrax_unsafe_cases(prob, key, cfg["diffrax_adjoints"])
    cases.update(dfx_cases)
    if extra:
        cases["diffrax_grid"] = prob.case("diffrax_library", key, brownian="grid")
        cases["naive_per_step"] = prob.case("naive", key)
    for variant in ("block", "chunked"):
        cases[f"floor[{variant}]"] = prob.case(
            "floor", key, noise_block=prob.default_block, variant=variant
        )
    cases["drift_only"] = prob.case("drift_only", key)
    timings = H.timeit_interleaved(cases, repeats=repeats)
    timings["numpy"] = H.timeit(
        lambda: numpy_em(prob.score_np, prob.x0, prob.ts), repeats=numpy_repeats
    )
    timings = {k: _with_throughput(v, prob) for k, v in timings.items()}
    floor = _best_of(timings, "floor[")
    dfx = _best_of(timings, "diffrax_unsafe[")
    # "fast over X" = time(X) / time(fast): how many times faster fast is
    ratios = {
        "fast_over_diffrax_unsafe": _ratio(timings, dfx, "fast"),
        "fast_time_over_floor": _ratio(timings, "fast", floor),
        "fast_time_over_floor_plus_drift": _ratio(timings, "fast", (floor, "drift_only")),
        "diffrax_unsafe_time_over_floor": _ratio(timings, dfx, floor),
        "fast_over_numpy": _ratio(timings, "numpy", "fast"),
    }
    if extra:
        ratios["fast_over_diffrax_grid"] = _ratio(timings, "diffrax_grid", "fast")
        ratios["fast_over_naive_per_step"] = _ratio(timings, "naive_per_step", "fast")
    _print_cases(f"{prob.title}, noise_block={prob.default_block}", timings, "fast", prob.sites)
    out = {
        "config": {
            "process": "OU(T=10)",
            "n": prob.n,
            "event_shape": list(prob.x0.shape[1:]),
            "n_steps": prob.steps,
            "method": "euler_maruyama",
            "noise_block": prob.default_block,
            "dtype": str(prob.x0.dtype),
            "repeats": repeats,
            "numpy_repeats": numpy_repeats,
        },
        "timings": timings,
        "floor_case": floor,
        "diffrax_unsafe_case": dfx,
        "diffrax_unsafe_library_status": dfx_status,
        "ratios": ratios,
    }
    if extra and cfg["pf_ode"]:
        # no noise at all: PF-ODE Heun in both, to compare the loops themselves
        ode = H.timeit_interleaved(
            {
                "fast_pf_ode_heun": prob.case("fast", key, method="heun"),
                "diffrax_pf_ode_heun": prob.case(
                    "diffrax_library", key, brownian="grid", method="heun"
                ),
            },
            repeats=repeats,
        )
        ode = {k: _with_throughput(v, prob) for k, v in ode.items()}
        out["no_noise_timings"] = ode
        out["ratios"]["fast_over_diffrax_pf_ode_heun"] = _ratio(
            ode, "diffrax_pf_ode_heun", "fast_pf_ode_heun"
        )
        _print_cases("two-point, no noise (probability-flow ODE, Heun)", ode, "fast_pf_ode_heun")
    return out


def bench_noise_block_sweep(prob: Problem, key, blocks, repeats: int) -> dict:
    """``fast`` and the floor at each ``noise_block``, all timed round-robin in one pool."""
    cases = {}
    for nb in blocks:
        cases[("fast", nb)] = prob.case("fast", key, noise_block=nb)
        for v in ("block", "chunked"):
            cases[(f"floor[{v}]", nb)] = prob.case("floor", key, noise_block=nb, variant=v)
    pooled = H.timeit_interleaved(cases, repeats=repeats)
    rows = {}
    for nb in blocks:
        t = {name: _with_throughput(v, prob) for (name, b), v in pooled.items() if b == nb}
        floor = _best_of(t, "floor[")
        rows[nb] = {
            "timings": t,
            "fast_traj_steps_per_s": t["fast"]["traj_steps_per_s"],
            "floor_case": floor,
            "fast_time_over_floor": _ratio(t, "fast", floor),
            "block_bytes": 4 * nb * prob.n * math.prod(prob.x0.shape[1:]),
        }
    best = min(rows, key=lambda b: rows[b]["timings"]["fast"]["best_s"])
    for r in rows.values():
        r["fast_time_over_best_block"] = _ratio(
            {"a": r["timings"]["fast"], "b": rows[best]["timings"]["fast"]}, "a", "b"
        )
    print(f"\n== noise_block sweep: {prob.title}")
    print(
        H.format_table(
            [
                "noise_block",
                "fast ms",
                "fast cpu ms",
                "fast traj-steps/s",
                "floor ms",
                "fast/floor",
                "fast/best",
                "block MiB",
            ],
            [
                [
                    nb,
                    f"{1e3 * r['timings']['fast']['best_s']:.1f}",
                    f"{1e3 * r['timings']['fast']['cpu_best_s']:.1f}",
                    f"{r['fast_traj_steps_per_s']:.3g}",
                    f"{1e3 * r['timings'][r['floor_case']]['best_s']:.1f}",
                    f"{r['fast_time_over_floor']['best']:.2f}",
                    f"{r['fast_time_over_best_block']['best']:.2f}",
                    f"{r['block_bytes'] / 2**20:.2f}",
                ]
                for nb, r in rows.items()
            ],
        )
    )
    return {
        "config": {
            "n": prob.n,
            "event_shape": list(prob.x0.shape[1:]),
            "n_steps": prob.steps,
            "repeats": repeats,
        },
        "by_block": rows,
        "fastest_block": best,
        "default_block": prob.default_block,
    }


def _print_summary(results: dict) -> None:
    rows = []
    for prob in ("two_point", "lattice"):
        for k, v in results[prob]["ratios"].items():
            target = ""
            if k == "fast_over_diffrax_unsafe":
                lim = TARGETS["fast_over_diffrax_unsafe_min"]
                target = f">= {lim:g}: {'PASS' if v['best'] >= lim else 'MISS'}"
            elif k == "fast_time_over_floor":
                lim = TARGETS["fast_time_over_floor_max"]
                target = f"<= {lim:g}: {'PASS' if v['best'] <= lim else 'MISS'}"
            rows.append([prob, k, f"{v['best']:.2f}", f"{v['cpu']:.2f}", target])
    print("\n== ratios ('fast_over_X' = time(X)/time(fast); '*_time_over_*' = time ratio)")
    print(H.format_table(["problem", "ratio", "wall", "cpu", "target (wall)"], rows))


def main(argv=None) -> dict:
    args = H.argument_parser(NAME, __doc__.splitlines()[0]).parse_args(argv)
    mode = "quick" if args.quick else "full"
    cfg = CONFIGS[mode]
    t_start = time.perf_counter()
    env = H.environment()
    print(
        f"{NAME} ({mode}): jax {env['jax']}, diffrax {env['diffrax']}, {env['device_platform']} "
        f"({env['device_kind']}), {env['cpu_count']} CPUs ({env['cpu_model']}), "
        f"load {env['loadavg_at_start'][0]:.1f}"
    )
    key = jax.random.key(0)
    tp, lat = two_point_problem(cfg, key), lattice_problem(cfg, key)
    checks = {
        "floor_noise_max_abs_err": check_floor_noise(key),
        "numpy_vs_fast_two_point_max_abs_err": check_numpy(tp, key, 64, 50),
        "numpy_vs_fast_lattice_max_abs_err": check_numpy(lat, key, 4, 20),
    }
    results = {
        "two_point": bench_problem(
            tp,
            cfg,
            key,
            repeats=cfg["tp_repeats"],
            numpy_repeats=cfg["tp_numpy_repeats"],
            extra=True,
        ),
        "noise_block_sweep": bench_noise_block_sweep(
            tp, key, cfg["tp_sweep_blocks"], cfg["tp_sweep_repeats"]
        ),
        "lattice": bench_problem(
            lat,
            cfg,
            key,
            repeats=cfg["lat_repeats"],
            numpy_repeats=cfg["lat_numpy_repeats"],
            extra=False,
        ),
    }
    if cfg["lat_sweep_blocks"]:
        results["lattice_noise_block_sweep"] = bench_noise_block_sweep(
            lat, key, cfg["lat_sweep_blocks"], cfg["lat_sweep_repeats"]
        )
    results["checks"] = checks
    _print_summary(results)
    print(f"\nchecks: {checks}")
    env["loadavg_at_end"] = list(os.getloadavg())
    payload = {
        "name": NAME,
        "mode": mode,
        "config": cfg,
        "targets": TARGETS,
        "environment": env,
        "results": results,
        "wall_s": time.perf_counter() - t_start,
    }
    out = H.save_json(args.out, payload)
    print(f"wrote {out}  ({payload['wall_s']:.0f} s)")
    return payload


if __name__ == "__main__":
    main()
