# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Forward noising, exact scores and reverse sampling
#
# This notebook walks through the three lowest layers of `gltheory` on the simplest dataset
# with a phase transition: two points $y=\pm1$ in one dimension (`TwoPoint(1.0)`).
#
# 1. **Forward marginals.** Every process noises as $x_t = a_t\,y + b_t\,z$ (`docs/theory/processes.md#forward-processes`).
#    Samples drawn that way are compared with the exact density `exp(gltheory.log_prob(...))`
#    for OU, VP (linear schedule) and VE (geometric schedule).
# 2. **Exact scores.** The score $s(x,t)$ of the two-point law, and the time at which its slope
#    at the symmetric point $x=0$ changes sign: $t_c^S=\tfrac12\ln2$ in OU time, next to the
#    reverse-SDE critical time $t_c^D=\tfrac12\,\mathrm{arcsinh}\,1$ (`docs/theory/critical-times.md#closed-forms`).
# 3. **Reverse sampling** with `gltheory.sample` on two-point data with weights $w=0.5$ and
#    $w=0.8$ and on a 2-D Gaussian mixture: histograms against the data, the class fraction
#    with its binomial error, and a handful of trajectories recorded inside the sampling loop
#    with `observe`/`save_at`.
#
# **Running it.** This file is a [jupytext](https://jupytext.readthedocs.io) "percent"
# notebook: open it in Jupyter (`pip install ".[notebooks]"`, then `jupyter lab notebooks/`) or
# run it as a script, `python notebooks/01_forward_and_reverse.py`. Two environment variables,
# read by the preamble that every notebook shares (`notebooks/_setup.py`), control it:
#
# - `GLTHEORY_NB_SMALL=1`: small batches and few steps, so that it runs in seconds (the test
#   suite, `tests/test_notebooks.py`, runs it this way);
# - `GLTHEORY_NB_OUT=<folder>`: where the PNG figures go (default: `notebook_outputs/` in the
#   current directory, which git ignores).

# %%
import math
import time
from functools import partial

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from _setup import OUT, SMALL, banner, show
from jax.tree_util import Partial
from matplotlib.colors import PowerNorm

import gltheory as gl
from gltheory import schedules

N_FORWARD = 4_000 if SMALL else 200_000  # forward samples per histogram
N_SAMPLES = 1_000 if SMALL else 20_000  # reverse-sampled trajectories per run
N_STEPS = 128 if SMALL else 1_024  # reverse-time steps (a multiple of the noise block, 32)
N_SAVED = 48 if SMALL else 200  # times at which `observe` records
N_TRAJ = 8  # trajectories drawn in the plots
N_GRID = 201 if SMALL else 601  # points of the x grids for exact curves

KEY = jax.random.key(2024)
T_START = time.perf_counter()
banner()

# Every function of the library is pure, so it can be jitted as it is. Calling the jitted
# versions compiles once per (dataset type, process type, shapes) instead of once per
# primitive, which keeps the notebook fast; everything plotted is converted to NumPy.
log_prob = jax.jit(gl.log_prob)
score = jax.jit(gl.score)
time_grid = jax.jit(gl.time_grid, static_argnums=1, static_argnames="kind")


# %% [markdown]
# ## 1. Forward marginals
#
# | process | $a_t$ | $b_t^2$ |
# | --- | --- | --- |
# | OU, $dx=-x\,dt+\sqrt2\,dW$ | $e^{-t}$ | $1-e^{-2t}$ |
# | VP linear, $\beta(t)=\beta_{\min}+(\beta_{\max}-\beta_{\min})t$, $T=1$ | $\sqrt{\bar\alpha_t}$ | $1-\bar\alpha_t$ |
# | VE geometric, $\sigma(t)=\sigma_{\min}(\sigma_{\max}/\sigma_{\min})^{t}$, $T=1$ | $1$ | $\sigma^2(t)$ |
#
# For two points the forward marginal is a two-Gaussian mixture,
# $p_t(x)=w\,\mathcal N(x;a_t,b_t^2)+(1-w)\,\mathcal N(x;-a_t,b_t^2)$. The processes differ
# only in *how fast* they move through the signal-to-noise ratio ${\rm SNR}=a_t^2/b_t^2$:
# at equal SNR their marginals are the same up to the rescaling $x\mapsto x/a_t$.
# So we compare them at the same four SNR values (those of the OU times $0.05, 0.2, t_c^S,
# 1.0$), converted to each process's own time with `process.t_of_snr`.

# %%
two_point = gl.TwoPoint(1.0)  # y = +1 or -1 with probability 1/2 each; Lambda = 1
processes = {
    "OU": gl.OU(5.0),  # T = 5: a_T^2 = e^{-10}, so the start N(0, b_T^2) is p_T to O(5e-5)
    "VP linear": gl.VP("linear"),
    "VE geometric": gl.VE("geometric"),
}
ou = processes["OU"]

# t_c^S for Lambda = 1, OU time (`docs/theory/critical-times.md#closed-forms`)
T_C_SCORE = 0.5 * math.log(2.0)
T_C_SDE = 0.5 * math.asinh(1.0)  # t_c^D, OU time
snr_values = 1 / np.expm1(2 * np.array([0.05, 0.2, T_C_SCORE, 1.0]))  # OU: SNR = 1/(e^{2t}-1)


@partial(jax.jit, static_argnums=2)
def data_and_noise(data, key, n):
    """``n`` pairs (y, z): y from the data law, z ~ N(0, I)."""
    k_y, k_z = jax.random.split(key)
    y = data.sample(k_y, n)
    return y, jax.random.normal(k_z, y.shape, y.dtype)


# One set of (y, z) pairs, shared by the three processes: x_t = a_t y + b_t z.
y, z = data_and_noise(two_point, jax.random.fold_in(KEY, 1), N_FORWARD)
y, z = np.asarray(y)[:, 0], np.asarray(z)[:, 0]


@jax.jit
def exact_row(data, process, snr):
    """For each SNR value: the time t, a_t, b_t, and the exact p_t on a grid around the data."""
    t = process.t_of_snr(snr)
    a, b = process.a(t), process.b(t)
    grid = jnp.linspace(-(a + 4.5 * b), a + 4.5 * b, N_GRID, axis=-1)  # (n_snr, N_GRID)
    density = jnp.exp(gl.log_prob(data, process, grid[..., None], t[:, None]))
    return dict(t=t, a=a, b=b, grid=grid, density=density)


fig, axes = plt.subplots(3, 4, figsize=(13, 7.5), constrained_layout=True)
print(f"{'process':>13} {'t':>7} {'SNR':>7} | {'var(x_t) samples':>16} {'exact':>7}")
for row, (name, proc) in enumerate(processes.items()):
    r = jax.device_get(exact_row(two_point, proc, snr_values))
    var = r["a"] ** 2 + r["b"] ** 2  # variance of x_t for y = +-1 with equal weights
    for col in range(len(snr_values)):
        ax, grid = axes[row, col], r["grid"][col]
        x = r["a"][col] * y + r["b"][col] * z
        ax.hist(
            x,
            bins=60,
            range=(grid[0], grid[-1]),
            density=True,
            histtype="stepfilled",
            color="C0",
            alpha=0.45,
            label="samples $a_ty+b_tz$",
        )
        ax.plot(grid, r["density"][col], "k", lw=1.4, label=r"$\exp(\mathtt{log\_prob})$")
        ax.plot(
            grid,
            np.exp(-0.5 * grid**2 / var[col]) / np.sqrt(2 * np.pi * var[col]),
            color="C1",
            ls="--",
            lw=1,
            label="Gaussian, same moments",
        )
        ax.set_title(f"{name}: t = {r['t'][col]:.3f}, SNR = {snr_values[col]:.3g}", fontsize=9)
        ax.set_yticks([])
        print(
            f"{name:>13} {r['t'][col]:7.3f} {snr_values[col]:7.3g} | {np.var(x):16.4f} "
            f"{var[col]:7.4f}"
        )
axes[0, 0].legend(fontsize=7, loc="upper left")
for ax in axes[-1]:
    ax.set_xlabel("$x_t$")
fig.suptitle("Forward marginals of $y=\\pm1$: histograms of $a_t y + b_t z$ vs the exact density")
show(fig, "01_forward_marginals")

# %% [markdown]
# The histograms sit on the exact densities. The same pairs $(y, z)$ are used in every panel,
# so along each column the OU and VP histograms are identical (both processes are variance
# preserving, so they have the same $a_t, b_t$ at equal SNR), and the VE one is the same
# picture stretched by $1/a_t$. In the third column, ${\rm SNR}=1$, the density is exactly
# flat at the top: this is where it turns from bimodal to unimodal. In the last column
# (${\rm SNR}\cdot\Lambda<1$) it is already hard to tell from the Gaussian with the same mean
# and variance (dashed): the reason why Raya & Ambrogioni can start generation late from a
# fitted Gaussian (`docs/theory/meanfield.md#late-start`), as long as the start is above the critical time.
#
# The schedules themselves, on each process's own time axis $t/T$. The dots mark where each
# process reaches ${\rm SNR}\cdot\Lambda = 1$, the score criterion of `docs/theory/critical-times.md#three-criteria` ($\Lambda=1$ here).


# %%
@jax.jit
def schedule_curves(process, u):
    """a_t, b_t and SNR on the grid t = u T, and the time where SNR = 1."""
    t = u * process.T
    return dict(
        a=process.a(t), b=process.b(t), snr=process.snr(t), t_c=process.t_of_snr(1.0), T=process.T
    )


u = np.linspace(1e-3, 1.0, 400)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
for i, (name, proc) in enumerate(processes.items()):
    c = jax.device_get(schedule_curves(proc, u))
    axes[0].plot(u, c["a"], color=f"C{i}", label=name)
    axes[1].semilogy(u, c["b"], color=f"C{i}", label=name)
    axes[2].semilogy(u, c["snr"], color=f"C{i}", label=name)
    axes[2].plot(c["t_c"] / c["T"], 1.0, "o", color=f"C{i}")
    print(f"{name:>13}: t_c^S = {c['t_c']:.4f}  (t_c^S / T = {c['t_c'] / c['T']:.4f})")
axes[2].axhline(1.0, color="k", lw=0.8, ls="--")
axes[2].text(0.55, 1.4, r"SNR $=1/\Lambda$", fontsize=9)
for ax, label in zip(axes, ["$a_t$", "$b_t$", r"SNR $=a_t^2/b_t^2$"]):
    ax.set_xlabel("$t/T$")
    ax.set_title(label)
axes[0].legend(fontsize=8)
show(fig, "02_schedules")

# %% [markdown]
# ## 2. The exact score and the two critical times
#
# For $y=\pm1$ with equal weights the denoiser is $m(x,t)=\tanh(a_t x/b_t^2)$ and the score is
# $s(x,t)=(a_t m - x)/b_t^2$. Its slope at the symmetric point is (`docs/theory/score.md#posterior-covariance`, with the
# posterior variance $\Lambda=1$ at $x=0$)
# $$\partial_x s(0,t)=\frac{a_t^2\Lambda-b_t^2}{b_t^4},$$
# positive (the origin repels: a bimodal density) when ${\rm SNR}\cdot\Lambda>1$ and negative
# (the origin attracts) after. In OU time the sign change is at $t_c^S=\tfrac12\ln2=0.34657$.
#
# The reverse SDE does not follow $s$ alone: its drift is $x+2s = 2(\tfrac12x+s)$, and the
# slope of $\tfrac12x+s$ at the origin vanishes at the larger time
# $t_c^D=\tfrac12\,\mathrm{arcsinh}\,1=0.44069$, Raya & Ambrogioni's critical point
# $\bar\alpha_c=\sqrt2-1$. Both are computed below by autodiff of
# `gltheory.score` and a root finder, and checked against the closed forms.


# %%
@jax.jit
@jax.vmap
def slope_at_origin(t):
    """d s(x, t) / dx at x = 0 by autodiff of the exact score (OU, two points); t is a vector."""
    return jax.grad(lambda x: gl.score(two_point, ou, x.reshape(1, 1), t)[0, 0])(0.0)


def zero_crossing(f, lo, hi, n=256, rounds=4):
    """The point where the vectorised f changes sign in [lo, hi], by repeated grid refinement."""
    for _ in range(rounds):
        t = np.linspace(lo, hi, n)
        v = np.asarray(f(t))
        i = np.flatnonzero(np.sign(v[1:]) != np.sign(v[:-1]))[0]
        lo, hi = t[i], t[i + 1]
    return 0.5 * (lo + hi)


t_c_score_num = zero_crossing(slope_at_origin, 0.12, 1.5)
t_c_sde_num = zero_crossing(lambda t: 0.5 + np.asarray(slope_at_origin(t)), 0.12, 1.5)
print(f"t_c^S: autodiff + root finding {t_c_score_num:.5f}, exact 0.5 ln 2       = {T_C_SCORE:.5f}")
print(f"t_c^D: autodiff + root finding {t_c_sde_num:.5f}, exact 0.5 arcsinh 1 = {T_C_SDE:.5f}")
assert abs(t_c_score_num - T_C_SCORE) < 1e-3 and abs(t_c_sde_num - T_C_SDE) < 1e-3

score_times = [0.1, 0.2, T_C_SCORE, 0.6, 1.2]
xs = np.linspace(-2.5, 2.5, N_GRID)
fig, axes = plt.subplots(1, 3, figsize=(14, 3.9), constrained_layout=True)
colors = plt.cm.viridis(np.linspace(0, 0.9, len(score_times)))
for t, c in zip(score_times, colors):
    lbl = "$t=t_c^S$" if t == T_C_SCORE else f"$t={t:g}$"
    axes[0].plot(xs, np.exp(log_prob(two_point, ou, xs[:, None], t)), color=c, label=lbl)
    axes[1].plot(xs, np.asarray(score(two_point, ou, xs[:, None], t))[:, 0], color=c, label=lbl)
axes[0].set_title("density $p_t(x)$ (OU)")
axes[1].set_title("score $s(x,t)$ (OU)")
axes[1].set_ylim(-4, 4)
axes[1].axhline(0, color="k", lw=0.5)
for ax in axes[:2]:
    ax.set_xlabel("$x$")
    ax.legend(fontsize=8)

t_line = np.linspace(0.12, 1.5, 256)
slopes = np.asarray(slope_at_origin(t_line))
a2, b2 = np.exp(-2 * t_line), -np.expm1(-2 * t_line)  # OU
axes[2].plot(t_line, slopes, "C0", lw=2, label=r"$\partial_x s(0,t)$ (autodiff)")
axes[2].plot(t_line, (a2 - b2) / b2**2, "k:", label=r"$(a_t^2\Lambda-b_t^2)/b_t^4$")
axes[2].plot(t_line, 0.5 + slopes, "C3", lw=2, label=r"$\partial_x(\frac{1}{2}x+s)(0,t)$")
axes[2].axhline(0, color="k", lw=0.5)
for t_c, name, c in [(T_C_SCORE, "$t_c^S$", "C0"), (T_C_SDE, "$t_c^D$", "C3")]:
    axes[2].axvline(t_c, color=c, ls="--", lw=1)
    axes[2].text(t_c + 0.01, 2.4, name, color=c)
axes[2].set_ylim(-1.5, 3)
axes[2].set_xlabel("OU time $t$")
axes[2].set_title("slopes at the symmetric point $x=0$")
axes[2].legend(fontsize=8, loc="upper right")
show(fig, "03_scores_critical_times")

# %% [markdown]
# At $t_c^S$ the density is flat at the origin and the score is flat there too; for
# $t<t_c^S$ the score pushes away from $0$ on both sides (positive slope), for $t>t_c^S$ it is
# a restoring force. The reverse-SDE drift $x+2s=2(\tfrac12x+s)$ adds a repulsive linear
# term, so the origin of the *generative dynamics* turns from attracting to repelling already
# at $t_c^D>t_c^S$, that is, earlier along the generation, which runs from large to small $t$.
# Which of the two one calls "the" critical time is a convention; the library keeps them
# apart.
#
# ## 3. Reverse sampling
#
# `gltheory.sample` integrates the reverse SDE (Euler–Maruyama here) from $t=T$ down to a small
# $t_{\min}$ on a grid uniform in $\ln{\rm SNR}$ (`time_grid(..., kind="log_snr")`), starting
# from $\mathcal N(0,b_T^2)$. The score is the exact one, passed as
# `Partial(gltheory.score, data, process)`: a pytree whose arrays (such as the weight $w$) are
# traced, so the runs with $w=0.5$ and $w=0.8$ share one compiled sampler. Instead of storing
# every state, `observe(x, t)` records, at `N_SAVED` times picked by `save_at`,
#
# - the first `N_TRAJ` trajectories, and
# - the batch averages of the denoiser $m(x_t,t)=\mathbb E[y\mid x_t]$ and of $m^2$.
#
# Along the exact process $\mathbb E[m(x_t,t)]=\mathbb E[y]=2w-1$ at every $t$ (a martingale),
# so its flatness checks the sampler, while $\mathbb E[m^2]$ grows from $(2w-1)^2$ to $1$ as
# the trajectories commit to a class: a symmetry-breaking order parameter.

# %%
ts_ou = time_grid(ou, N_STEPS, kind="log_snr")
save_at = np.unique(np.linspace(0, N_STEPS, N_SAVED).round().astype(int))


def record_two_point(data, process, x, t):
    """What `observe` keeps at a saved time: a few paths and two batch averages."""
    m = gl.denoiser(data, process, x, t)[:, 0]
    return {"paths": x[:N_TRAJ, 0], "m": jnp.mean(m), "m2": jnp.mean(m**2)}


def binomial(k, n):
    """Fraction k/n and its binomial standard error."""
    f = k / n
    return f, math.sqrt(f * (1 - f) / n)


runs = {}
for i, w in enumerate((0.5, 0.8)):
    data = gl.TwoPoint(1.0, weight=w)
    t0 = time.perf_counter()
    sol = gl.sample(
        Partial(gl.score, data, ou),
        ou,
        jax.random.fold_in(KEY, 100 + i),
        (N_SAMPLES, 1),
        ts=ts_ou,
        observe=Partial(record_two_point, data, ou),
        save_at=save_at,
    )
    sol = jax.device_get(sol)
    frac, se = binomial(int(np.sum(sol.x[:, 0] > 0)), N_SAMPLES)
    runs[w] = (data, sol, frac, se)
    print(
        f"w = {w}: fraction at +1 = {frac:.4f} +- {se:.4f}  (z = {(frac - w) / se:+.2f});  "
        f"E[m] from {sol.observables['m'][0]:.3f} to {sol.observables['m'][-1]:.3f} "
        f"(exact {2 * w - 1:.1f});  {time.perf_counter() - t0:.2f} s"
    )

# %%
t_mesh = runs[0.5][1].saved_ts
x_mesh = np.linspace(-2.5, 2.5, 160)
x_tx = np.broadcast_to(x_mesh[None, :, None], (len(t_mesh), len(x_mesh), 1))
fig, axes = plt.subplots(2, 3, figsize=(14, 7.5), constrained_layout=True)
for row, (w, (data, sol, frac, se)) in enumerate(runs.items()):
    # (left) the exact p_t(x) with the recorded trajectories on top
    ax = axes[row, 0]
    p_tx = np.exp(np.asarray(log_prob(data, ou, x_tx, t_mesh[:, None])))
    ax.pcolormesh(
        t_mesh,
        x_mesh,
        p_tx.T,
        shading="nearest",
        cmap="Greys",
        norm=PowerNorm(0.4, vmin=0, vmax=2.5),
        rasterized=True,
    )
    ax.plot(t_mesh, sol.observables["paths"], lw=0.9)
    for t_c, name, c, ha in [
        (T_C_SCORE, " $t_c^S$", "C0", "left"),
        (T_C_SDE, "$t_c^D$ ", "C3", "right"),
    ]:
        ax.axvline(t_c, color=c, ls="--", lw=1)
        ax.text(t_c, 2.05, name, color=c, ha=ha, va="bottom")
    ax.set_ylim(x_mesh[0], x_mesh[-1])
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("OU time $t$ (generation runs left to right)")
    ax.set_ylabel("$x_t$")
    ax.set_title(f"w = {w}: {N_TRAJ} trajectories over the exact $p_t(x)$", fontsize=10)

    # (middle) the final samples vs the exact marginal at t_min, and the data weights
    ax = axes[row, 1]
    t_min = float(sol.ts[-1])
    ax.hist(
        sol.x[:, 0],
        bins=80,
        range=(-1.6, 1.6),
        density=True,
        histtype="stepfilled",
        color="C0",
        alpha=0.5,
        label=f"{N_SAMPLES} samples",
    )
    x_end = np.linspace(-1.6, 1.6, N_GRID)
    ax.plot(
        x_end,
        np.exp(np.asarray(log_prob(data, ou, x_end[:, None], t_min))),
        "k",
        lw=1,
        label=f"exact $p_t$, $t={t_min:.3g}$",
    )
    ax.set_xlim(-1.6, 1.6)
    ax.set_xlabel("$x$ at the end of the run")
    ax.set_title(f"fraction at +1: {frac:.3f} $\\pm$ {se:.3f}   (w = {w})", fontsize=10)
    ax.legend(fontsize=8, loc="upper center")
    ax2 = ax.twinx()  # the data: two deltas with weights 1 - w and w
    ax2.vlines([-1, 1], 0, [1 - w, w], colors="C3", lw=3, alpha=0.7)
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("data weight", color="C3")

    # (right) the denoiser moments recorded by `observe`
    ax = axes[row, 2]
    ax.plot(t_mesh, sol.observables["m"], "C0", label=r"batch mean of $m(x_t,t)$")
    ax.plot(t_mesh, sol.observables["m2"], "C1", label=r"batch mean of $m^2$")
    ax.axhline(2 * w - 1, color="C0", ls=":", lw=1, label=r"$\mathbb{E}[y]=2w-1$")
    for t_c, c in [(T_C_SCORE, "C0"), (T_C_SDE, "C3")]:
        ax.axvline(t_c, color=c, ls="--", lw=1)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_ylim(-0.1, 1.1)
    ax.set_xlabel("OU time $t$")
    ax.set_title("order parameter along generation", fontsize=10)
    ax.legend(fontsize=8, loc="center right", bbox_to_anchor=(1.0, 0.3))
show(fig, "04_reverse_two_point")

# %% [markdown]
# The trajectories wander around $0$ while the origin is stable and pick a side near the
# critical times; the end points reproduce the exact $p_{t_{\min}}$ and the class fraction
# agrees with $w$ at the level of its binomial standard error (the printed $z$ is the
# deviation in units of that error; $|z|\lesssim2$ is what chance gives). The batch mean of
# the denoiser stays at $2w-1$ (up to the sampling noise of the batch) along the whole run,
# and $\mathbb E[m^2]$ rises from $(2w-1)^2$ to $1$ over an interval of $t$ around $t_c$: the
# class is decided there, not at the start or at the end.
#
# ### A 2-D Gaussian mixture (VP, linear schedule, probability-flow ODE)
#
# Two Gaussian components with unequal weights and widths, $w=(0.3, 0.7)$, generated with the
# VP process of Raya & Ambrogioni. This time the sampler integrates the probability-flow ODE,
# drift $\tfrac12\beta(t)[x+s]$ (`docs/theory/processes.md#reverse-sde`), with Heun's method (`method="heun"`): the
# only randomness is the Gaussian start, and the trajectories are smooth. Each sample is
# assigned to the component with the larger posterior responsibility, and the fraction in the
# first component is compared with $w_1=0.3$.

# %%
vp = processes["VP linear"]
W1 = 0.3
mixture = gl.GaussianMixture(
    means=[[2.0, 1.0], [-1.5, -1.0]], variances=[0.15, 0.3], weights=[W1, 1 - W1]
)
ts_vp = time_grid(vp, N_STEPS, kind="log_snr")


def record_paths(x, t):
    return x[:N_TRAJ]


t0 = time.perf_counter()
sol_gm = gl.sample(
    Partial(gl.score, mixture, vp),
    vp,
    jax.random.fold_in(KEY, 200),
    (N_SAMPLES, 2),
    ts=ts_vp,
    method="heun",
    observe=record_paths,
    save_at=save_at,
)
sol_gm = jax.device_get(sol_gm)
x_gm = sol_gm.x
means, variances, weights = jax.device_get((mixture.means, mixture.variances, mixture.weights))
log_resp = np.log(weights) - 0.5 * np.sum(
    (x_gm[:, None, :] - means) ** 2 / variances + np.log(variances), axis=-1
)
component = np.argmax(log_resp, axis=1)
frac_gm, se_gm = binomial(int(np.sum(component == 0)), N_SAMPLES)
print(
    f"mixture: fraction in component 1 = {frac_gm:.4f} +- {se_gm:.4f} (w_1 = {W1}, "
    f"z = {(frac_gm - W1) / se_gm:+.2f}); {time.perf_counter() - t0:.2f} s"
)
draw = jax.jit(gl.GaussianMixture.sample, static_argnums=2)  # (data, key, n)
x_data = np.asarray(draw(mixture, jax.random.fold_in(KEY, 201), N_SAMPLES))
print("mean of the samples", x_gm.mean(0).round(3), "; of the data law", weights @ means)

fig, axes = plt.subplots(1, 3, figsize=(14, 4.3), constrained_layout=True)
lim = (-3.6, 3.6)
grid = np.linspace(*lim, 120)
gx, gy = np.meshgrid(grid, grid)
p_end = np.exp(np.asarray(log_prob(mixture, vp, np.stack([gx, gy], -1), sol_gm.ts[-1])))
n_show = min(N_SAMPLES, 2_000)  # points per scatter
axes[0].scatter(*x_data[:n_show].T, s=3, c="0.6", alpha=0.5, label="data")
axes[0].scatter(
    *x_gm[:n_show].T,
    s=3,
    c=np.where(component[:n_show] == 0, "C3", "C0"),
    alpha=0.5,
    label=f"{n_show} generated (coloured by component)",
)
axes[0].contour(gx, gy, p_end, levels=5, colors="k", linewidths=0.6)
axes[0].set_title(
    f"component 1 fraction {frac_gm:.3f} $\\pm$ {se_gm:.3f} (w$_1$ = {W1})", fontsize=10
)
axes[0].legend(fontsize=8, loc="lower right", markerscale=3)

paths = sol_gm.observables  # (n_saved, N_TRAJ, 2)
axes[1].contour(gx, gy, p_end, levels=5, colors="0.7", linewidths=0.6)
for j in range(N_TRAJ):
    axes[1].plot(paths[:, j, 0], paths[:, j, 1], lw=0.8, color=f"C{j % 10}")
    axes[1].plot(*paths[0, j], "o", ms=3, color=f"C{j % 10}")
    axes[1].plot(*paths[-1, j], "*", ms=8, color=f"C{j % 10}")
axes[1].set_title(f"{N_TRAJ} trajectories (o: $t=T$, *: $t=t_{{\\min}}$)", fontsize=10)
for ax in axes[:2]:
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")

axes[2].hist(
    x_data[:, 0],
    bins=70,
    range=lim,
    density=True,
    histtype="step",
    color="0.3",
    lw=1.5,
    label="data",
)
axes[2].hist(
    x_gm[:, 0],
    bins=70,
    range=lim,
    density=True,
    histtype="stepfilled",
    alpha=0.5,
    color="C0",
    label="generated",
)
axes[2].set_xlabel("$x_1$")
axes[2].set_title("first coordinate", fontsize=10)
axes[2].legend(fontsize=8)
show(fig, "05_reverse_gaussian_mixture")

# %% [markdown]
# ## 4. Conclusion
#
# - The forward marginals of all three processes are the same two-Gaussian family indexed by
#   the SNR (up to the rescaling by $a_t$): the samples $a_ty+b_tz$ match `exp(log_prob)`, and for ${\rm SNR}\cdot\Lambda<1$
#   the marginal is close to a Gaussian.
# - The exact score of two points changes the sign of its slope at the origin exactly at
#   $t_c^S=\tfrac12\ln 2$ (${\rm SNR}=1/\Lambda$), where the density turns bimodal; the drift of
#   the reverse SDE does so at the larger time $t_c^D=\tfrac12\,\mathrm{arcsinh}\,1$, earlier
#   along the generation. Autodiff of
#   `gltheory.score` plus a root finder gives both to better than $10^{-3}$.
# - Reverse sampling with the exact score reproduces the data: the class fractions agree with
#   $w=0.5$, $w=0.8$ and $w_1=0.3$ within about two binomial standard errors (the printed $z$),
#   and the end points follow the exact $p_{t_{\min}}$. Trajectories commit to a class in a
#   window around the critical times, visible in the recorded paths and in the rise of
#   $\mathbb E[m^2]$, while $\mathbb E[m]$ stays at $\mathbb E[y]$. The deterministic
#   probability-flow ODE, used for the mixture, reproduces the data law as well as the SDE.
# - `observe`/`save_at` kept only a few paths and two numbers per saved time, so the memory of
#   a run does not grow with the number of steps times the batch size.

# %% [markdown]
# ## 5. Where to spend the steps: critical-window time grids
#
# The class of a trajectory is decided inside a narrow window of times (where the class
# susceptibility $R(t)$ peaks), so a sampler with a fixed budget of score evaluations should
# put its steps there (`docs/theory/schedules.md#critical-grid`). `gltheory.schedules` locates
# the window from the data (`window_from_data`) and `time_grid(kind="critical")` moves a
# fraction of the steps of a standard grid into it. For two points $\pm4$ with weights
# $(0.8, 0.2)$ the Euler–Maruyama chain's class-fraction bias is computed **exactly**, by
# propagating the chain's density on cells (`class_fraction_bias`, no Monte Carlo; with equal
# weights the bias would vanish by symmetry). Left: the grids of 24 steps; right: the bias
# against the number of steps (= score evaluations) for each grid.

# %%
MU_S, W_S, T_MIN_S = 4.0, 0.8, 0.01
N_CELLS_S = 128 if SMALL else 256
STEPS_S = [8, 16, 32] if SMALL else [8, 16, 32, 64, 128]
ou_s = gl.OU()
data_s = gl.DeltaMixture(jnp.array([[MU_S], [-MU_S]]), jnp.array([W_S, 1 - W_S]))
win_s = schedules.window_from_data(data_s, ou_s)
print(f"window from the data: centre {float(win_s.centre):.3f}, width {float(win_s.width):.3f}")


def grid_s(kind, n):
    if kind == "critical":
        return schedules.critical_grid(ou_s, n, win_s, t_min=T_MIN_S)
    return gl.time_grid(ou_s, n, kind=kind, t_min=T_MIN_S)


kinds_s = ("uniform", "log_snr", "edm", "critical")
bias_s = {
    k: [
        float(
            schedules.class_fraction_bias(
                ou_s, grid_s(k, n), MU_S, W_S, n_cells=N_CELLS_S, pad_to=max(STEPS_S)
            )
        )
        for n in STEPS_S
    ]
    for k in kinds_s
}
for k in kinds_s:
    print(f"{k:9s} bias: " + "  ".join(f"{n}: {b:+.4f}" for n, b in zip(STEPS_S, bias_s[k])))

fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.8))
for k in kinds_s:
    t = np.asarray(grid_s(k, 24))
    axes[0].plot(t, np.arange(t.size), ".-", ms=3, label=k)
    axes[1].loglog(STEPS_S, np.abs(bias_s[k]), "o-", ms=3, label=k)
axes[0].axvspan(
    float(win_s.centre - win_s.width), float(win_s.centre + win_s.width), color="C3", alpha=0.1
)
axes[0].set(xscale="log", xlabel="t (forward, OU)", ylabel="step index", title="24-step grids")
axes[1].axhline(0.005, color="k", lw=0.7, ls=":")
axes[1].set(xlabel="Euler–Maruyama steps", ylabel="|class-fraction bias| (exact)")
axes[1].set_title("bias against score evaluations", fontsize=10)
for ax in axes:
    ax.legend(fontsize=8)
show(fig, "06_critical_grids")

# %% [markdown]
# The critical grid (shaded: the window, centre $\pm$ width) reaches a given bias with far fewer
# steps than the standard grids: about 26 against 61 for the best standard grid (uniform) at
# $|{\rm bias}| < 0.005$ in `benchmarks/bench_schedules.py`, which also measures Heun, the
# Wasserstein distance, a Gaussian mixture in $d=64$ and the 2-D patch model; the report
# experiment `schedules` checks the step counts (`docs/theory/schedules.md#measured`).

# %%
print(f"notebook finished in {time.perf_counter() - T_START:.1f} s; figures in {OUT.resolve()}")
