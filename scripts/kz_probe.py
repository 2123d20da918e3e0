r"""Kibble–Zurek, a first look: the correlation length xi(t) of the two-uniform-image patch model
sampled with the lambda-family of reverse dynamics (``gl.LambdaEulerMaruyama``).

The score is the exact ELS patch score of the two uniform images +-1 on a periodic D = 2
lattice (window k), in its closed form ``gl.scores.uniform_patch_score`` (checked here against
``gl.score(gl.ELS(images, k), ...)`` on a random state). It is not the score of the patch
model's own marginals, so the lambda-family no longer keeps one law: lambda^2 sets the
relaxation per unit of generation time, i.e. the quench time tau_Q ∝ lambda^2
(``docs/theory/processes.md#lambda-family``). Kibble–Zurek predicts a frozen correlation
length xi_hat ∝ tau_Q^(nu/(1+z nu)) = lambda^(2 nu/(1+z nu)): exponent in lambda ~0.63 for
2-D Ising (nu = 1, z = 2.17), 0.5 for mean field.

For each lambda (one compiled sampler, vmapped over lambda) the script records, at a few
times t, the structure factor of the states x_t and of the denoised field
E[y | x_t] = (x + b^2 s)/a, the real-space correlation lengths (1/e and integrated) of
``gl.field.correlation_length`` on the connected fields (each sample's spatial mean removed),
the sign-domain length of the denoised field (``gl.field.domain_statistics``) and the mean
|magnetisation|, with jackknife errors over blocks of trajectories. It
writes JSON and prints a table. Numbers are a probe, not a measurement: one lattice size,
one window, a few lambdas.

Usage::

    .venv/bin/python scripts/kz_probe.py --out kz_probe.json            # L = 32, ~1-3 min
    .venv/bin/python scripts/kz_probe.py --size 64 --n 128 --steps 1200 --out kz64.json
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

import gltheory as gl

TARGET_TIMES = (2.0, 1.15, 0.9, 0.7, 0.55, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05)


def _check_closed_form(process, size, window, key):
    """Largest |closed form - ELS machine| of the two-uniform-image score at t = 0.5."""
    images = jnp.stack([jnp.ones((size, size)), -jnp.ones((size, size))])
    machine = gl.ELS(images, window)
    x = jax.random.normal(key, (2, size, size))
    a = gl.scores.uniform_patch_score(process, x, 0.5, window=window, lattice_ndim=2)
    b = gl.score(machine, process, x, 0.5)
    return float(jnp.max(jnp.abs(a - b)))


XI_METHODS = ("one_over_e", "integrated")


@jax.jit
def _xi_jackknife(fields, n_blocks_arr):
    """Real-space correlation lengths (``XI_METHODS``) of the connected field (each sample's
    spatial mean removed, so a net magnetisation of a finite lattice does not count as
    correlation), and their leave-one-block-out values (blocks of trajectories)."""
    n_blocks = n_blocks_arr.shape[0]
    f = fields - fields.mean(axis=(-2, -1), keepdims=True)
    blocks = f.reshape((n_blocks, -1) + f.shape[1:])
    s_blocks = jax.vmap(lambda b: gl.field.structure_factor(b, axes=(-2, -1)))(blocks)
    s_all = s_blocks.mean(axis=0)
    s_loo = (n_blocks * s_all - s_blocks) / (n_blocks - 1)
    out = {}
    for m in XI_METHODS:
        out[m] = (
            gl.field.correlation_length(s_all, method=m, from_structure_factor=True),
            gl.field.correlation_length(s_loo, method=m, from_structure_factor=True, axes=(-2, -1)),
        )
    return out


def _with_se(fields, n_blocks):
    """{method: (xi, jackknife SE)}."""
    res = {}
    for m, (xi, loo) in _xi_jackknife(jnp.asarray(fields), jnp.zeros(n_blocks)).items():
        xi, loo = float(xi), np.asarray(loo)
        loo = loo[np.isfinite(loo)]
        if loo.size < 2 or not np.isfinite(xi):
            res[m] = (xi, float("nan"))
        else:
            res[m] = (
                xi,
                float(np.sqrt((loo.size - 1) / loo.size * np.sum((loo - loo.mean()) ** 2))),
            )
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=32, help="lattice side L (D = 2)")
    p.add_argument("--window", type=int, default=3, help="patch window k (odd)")
    p.add_argument("--n", type=int, default=64, help="trajectories per lambda")
    p.add_argument("--steps", type=int, default=800, help="reverse steps (log-SNR grid)")
    p.add_argument("--lams", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 4.0])
    p.add_argument("--t-max", type=float, default=3.0)
    p.add_argument("--t-min", type=float, default=0.02)
    p.add_argument("--g-star", type=float, default=7.0, help="frozen-time G* (issue 18: ~7?)")
    p.add_argument("--blocks", type=int, default=8, help="jackknife blocks (divides --n)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="kz_probe.json")
    args = p.parse_args(argv)
    if args.n % args.blocks:
        p.error("--blocks must divide --n")

    jax.config.update("jax_enable_x64", True)
    key = jax.random.PRNGKey(args.seed)
    process = gl.OU(T=args.t_max)
    L, k = args.size, args.window
    check = _check_closed_form(process, min(L, 8), k, jax.random.fold_in(key, 1))

    def score_fn(x, t):
        return gl.scores.uniform_patch_score(process, x, t, window=k, lattice_ndim=2)

    ts = gl.time_grid(process, args.steps, kind="log_snr", t_min=args.t_min)
    tsn = np.asarray(ts)
    save_at = sorted({int(np.argmin(np.abs(tsn - t))) for t in TARGET_TIMES} | {args.steps})

    def observe(x, t):
        den = (x + process.b2(t) * score_fn(x, t)) / process.a(t)
        return {"x": x, "denoised": den}

    def run(lam):
        sol = gl.sample(
            score_fn,
            process,
            key,
            (args.n, L, L),
            ts=ts,
            solver=gl.LambdaEulerMaruyama(lam),
            observe=observe,
            save_at=save_at,
        )
        return sol.observables, sol.n_nonfinite

    t0 = time.perf_counter()
    obs, n_bad = jax.jit(jax.vmap(run))(jnp.asarray(args.lams))
    obs = jax.tree.map(np.asarray, obs)
    wall_sample = time.perf_counter() - t0

    snr = lambda t: float(process.snr(t))  # noqa: E731
    t_cS = float(0.5 * np.log1p(k**2))  # G = SNR k^D = 1 (OU)
    t_star = float(0.5 * np.log1p(k**2 / args.g_star))
    rows = []
    for li, lam in enumerate(args.lams):
        for j, i in enumerate(save_at):
            x = obs["x"][li, j]
            den = obs["denoised"][li, j]
            row = {"lam": lam, "t": float(tsn[i]), "G": snr(tsn[i]) * k**2}
            for name, fields in (("x", x), ("den", den)):
                for m, (v, se) in _with_se(fields, args.blocks).items():
                    row[f"xi_{m}_{name}"], row[f"xi_{m}_{name}_se"] = v, se
            dom = gl.field.domain_statistics(den, axes=(-2, -1))
            row["domain_length"] = float(dom.domain_length)
            row["domain_length_se"] = float(dom.domain_length_se)
            row["abs_magnetisation"] = float(np.mean(np.abs(den.mean(axis=(-2, -1)))))
            rows.append(row)

    # the lambda-dependence of xi at each time: slope of ln xi vs ln lambda over lambda >= 1
    big = [lam for lam in args.lams if lam >= 1.0]
    slopes = []
    if len(big) >= 2:
        for i in save_at:
            t = float(tsn[i])
            sel = [r for r in rows if r["t"] == t and r["lam"] >= 1.0]
            for field in ("xi_one_over_e_den", "xi_integrated_den", "domain_length"):
                y = np.array([r[field] for r in sel])
                if np.all(np.isfinite(y)) and np.all(y > 0):
                    slope = float(np.polyfit(np.log([r["lam"] for r in sel]), np.log(y), 1)[0])
                else:
                    slope = float("nan")
                slopes.append({"t": t, "field": field, "slope_in_lambda": slope})

    result = {
        "config": vars(args),
        "closed_form_vs_ELS_max_abs_diff": check,
        "t_linear_instability_G1": t_cS,
        "t_star_for_g_star": t_star,
        "n_nonfinite": np.asarray(n_bad).tolist(),
        "wall_seconds_sampling": wall_sample,
        "kz_prediction_slope_in_lambda": {"ising_2d": 2 * 1 / (1 + 2.17), "mean_field": 0.5},
        "rows": rows,
        "slopes": slopes,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)

    print(
        f"closed form vs ELS: max |diff| = {check:.2e}; t(G=1) = {t_cS:.3f}, "
        f"t*(G*={args.g_star:g}) = {t_star:.3f}; sampling {wall_sample:.1f} s; "
        f"non-finite {np.asarray(n_bad).tolist()}"
    )
    print(
        f"{'lam':>5} {'t':>6} {'G':>7} {'xi_e(x)':>12} {'xi_e(den)':>13} {'xi_int(den)':>13} "
        f"{'ell_dom':>13} {'|m|':>6}"
    )
    for r in rows:
        print(
            f"{r['lam']:5.2f} {r['t']:6.3f} {r['G']:7.2f} "
            f"{r['xi_one_over_e_x']:6.2f}±{r['xi_one_over_e_x_se']:4.2f} "
            f"{r['xi_one_over_e_den']:6.2f}±{r['xi_one_over_e_den_se']:5.2f} "
            f"{r['xi_integrated_den']:6.2f}±{r['xi_integrated_den_se']:5.2f} "
            f"{r['domain_length']:6.2f}±{r['domain_length_se']:5.2f} "
            f"{r['abs_magnetisation']:6.3f}"
        )
    for s in slopes:
        print(
            f"t = {s['t']:.3f}  d ln {s['field']} / d ln lambda (lambda >= 1) = "
            f"{s['slope_in_lambda']:.3f}"
        )


if __name__ == "__main__":
    main()
