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
# # Where patterns are born: the universality class of the patch model
#
# The patch model of two uniform images $\pm\mathbf 1$ has a closed-form score whose symmetric
# point becomes linearly unstable at $t_c^S$, where ${\rm SNR}_t\,k^D=1$
# (`docs/theory/patch.md#mode-softening`). The Ginzburg–Landau picture puts the spatial
# transition there, with mean-field exponents. This notebook measures the transition itself and
# finds it elsewhere: later in generation, and in a different class.
#
# 1. **The reduction, in words.** Write the state as $x=b_t\varphi$ and the fictitious time as
#    $\tau=b_t^2\tau'$. The window field $\Psi=\sqrt{{\rm SNR}}\,K\varphi$ then obeys a closed
#    equation whose only parameters are the reduced coupling $G={\rm SNR}_t\,k^D$, the noise
#    temperature $T$ and, with lengths measured in windows, $L/k$
#    (`docs/theory/spatial.md#reduction`). So the window size $k$ drops out (up to the lattice
#    resolution $1/k$), the noise stays as large as the signal in the window (no Kac-type
#    mean-field limit as $k$ grows), and one frozen-time run at $(G, L/k)$ describes every
#    process, every $t$ and every $k$ with that $G$.
# 2. **Binder curves** of the frozen-time lattice ($D=2$, $T=1$, $k=3$, $L/k=4, 8$) cross at
#    $G^\ast$ far from $G=1$, with a Binder value near the 2-D Ising one.
# 3. **The $k$-collapse**: $U$ and $\chi$ at equal $(G, L/k)$ for $k=3$ and $5$.
# 4. **The verdict** of the finite-size-scaling study (`scripts/spatial_fss.py`, its recorded
#    JSON) for the large sizes, which this notebook quotes rather than reruns.
# 5. **Kibble–Zurek**, in a paragraph.
# 6. **Consequences**: the pattern-birth time $t^\ast$ against $t_c^S$ for OU, VP and VE; the
#    correlation length of a generative run; where a pulse has leverage.
#
# `GLTHEORY_NB_SMALL=1` gives small sizes (about a minute); `GLTHEORY_NB_OUT=<folder>` is where
# the figures go.

# %%
import json
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _setup import OUT, REPO, SMALL, banner, show  # noqa: E402

import gltheory as gl  # noqa: E402
from gltheory.experiments import spatial_class as sc  # noqa: E402

spatial = gl.spatial  # the frozen-time lattice (docs/theory/spatial.md)

CFG = sc.SpatialClassConfig.default()
if SMALL:
    CFG = sc.SpatialClassConfig(
        G=(6.0, 6.8, 7.6),
        replicas=(32, 16),
        n_burn=(2000, 4000),
        n_samples=100,
        collapse_replicas=32,
        gen_traj=12,
        gen_steps=80,
        pulse_times=(1.4, 1.0, 0.7, 0.45, 0.3),
    )
KEY = jax.random.key(9)
T_START = time.perf_counter()
banner()

# %% [markdown]
# ## 1. The reduction, checked on two windows
#
# With $G$ and $L/k$ fixed, the drift and the noise amplitude of the reduced field do not depend
# on $k$; what remains is the resolution $1/k$ at which the same continuum problem is sampled.
# Two windows at the same $(G, L/k)$ should therefore give the same Binder cumulant
# $U=1-\langle M^4\rangle/3\langle M^2\rangle^2$ and susceptibility $\chi$, up to a small
# lattice correction that is largest for the coarsest window $k=3$.

# %%
points = {}
for j, k in enumerate(CFG.collapse_windows):
    run = spatial.lattice_langevin(
        jax.random.fold_in(KEY, j),
        CFG.collapse_G,
        window=k,
        cells=CFG.collapse_cells,
        n_replicas=CFG.collapse_replicas,
        n_burn=CFG.n_burn[0],
        n_samples=CFG.n_samples,
        thin=CFG.thin,
        structure_factor=False,
        dtype=jnp.float32,
    )
    points[k] = spatial.lattice_statistics(run)
    st = points[k]
    print(
        f"k={k}  G={CFG.collapse_G:g}  L/k={CFG.collapse_cells}  (L={k * CFG.collapse_cells}): "
        f"U = {st.binder:.4f} ± {st.binder_se:.4f}   chi = {st.chi:.3f} ± {st.chi_se:.3f}"
    )
for f in ("binder", "chi"):
    kc = spatial.k_collapse(
        [getattr(points[k], f) for k in points], [getattr(points[k], f + "_se") for k in points]
    )
    print(
        f"{f}: chi^2 = {kc.chi2:.2f} (dof {kc.dof}, p = {kc.p_value:.2g}), largest pair z = {kc.max_pair_z:.2f}"
    )

# %% [markdown]
# ## 2. Binder curves: the transition is not at $G=1$
#
# At a continuous transition the Binder curves of different sizes cross at one coupling $G^\ast$,
# and the value there, $U^\ast$, is universal: $0.6107$ for the 2-D Ising class on periodic
# squares, $0.2705$ for mean field with $N=L^2$ sites. Below $G^\ast$ the larger lattice is more
# disordered (lower $U$), above it more ordered. The crossing is located by the study's rule
# (`gltheory.spatial.lattice_binder_crossings`: a weighted quadratic per size, the root of the
# difference, first-order errors). The runs start ordered; burn-in and thinning are fixed (the
# equilibration checks of `docs/theory/spatial.md#equilibration` are the study's job).

# %%
scan = sc.binder_scan(jax.random.fold_in(KEY, 100), CFG)
cr = spatial.lattice_binder_crossings(
    scan["G"], scan["binder"], scan["binder_se"], scan["sizes"], degree=CFG.degree
)
G_STAR, G_STAR_SE = float(cr.G_star[-1]), float(cr.G_star_se[-1])
print(
    f"crossing of L/k = {int(scan['sizes'][0])} and {int(scan['sizes'][1])}: "
    f"G* = {G_STAR:.3f} ± {G_STAR_SE:.3f},  U* = {cr.binder_star[-1]:.4f} ± {cr.binder_star_se[-1]:.4f}"
)
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
for i, c in enumerate(scan["sizes"]):
    a1.errorbar(
        scan["G"],
        scan["binder"][i],
        scan["binder_se"][i],
        marker="o",
        capsize=2,
        label=f"L/k = {int(c)}",
    )
    a2.errorbar(
        scan["G"], scan["chi"][i], scan["chi_se"][i], marker="o", capsize=2, label=f"L/k = {int(c)}"
    )
a1.axhline(0.6107, color="k", ls=":", lw=1, label="2-D Ising U*")
a1.axhline(0.2705, color="gray", ls="--", lw=1, label="mean-field U*")
for ax in (a1, a2):
    ax.axvline(G_STAR, color="C3", ls="--", lw=1)
    ax.set_xlabel("G = SNR k^2")
    ax.legend(fontsize=8)
a1.set(ylabel="Binder U", title="Binder curves, k = 3, D = 2, T = 1")
a2.set(ylabel="chi", title="susceptibility")
show(fig, "09_binder_curves")

# %% [markdown]
# With only two sizes the exponents are effective ones (corrections to scaling included), but
# they can already be read off: $\nu$ from the Binder slope $dU/dG\propto L^{1/\nu}$,
# $\gamma/\nu$ from $\chi_L(G^\ast)\propto L^{\gamma/\nu}$ and $\beta/\nu$ from
# $\langle|M|\rangle_L(G^\ast)\propto L^{-\beta/\nu}$ (`gltheory.spatial.fss_exponent`). In
# $D=2$ the Binder slope alone cannot separate the classes (mean field with $N=L^2$ sites also
# has an effective $\nu=1$); $U^\ast$, $\gamma/\nu$ and $\beta/\nu$ can.

# %%
g_in = min(max(G_STAR, CFG.G[0]), CFG.G[-1])
fits = {
    "nu": spatial.fss_exponent(
        scan["G"],
        scan["binder"],
        scan["binder_se"],
        scan["sizes"],
        g_in,
        G_STAR_SE,
        derivative=True,
    ),
    "gamma_over_nu": spatial.fss_exponent(
        scan["G"], scan["chi"], scan["chi_se"], scan["sizes"], g_in, G_STAR_SE
    ),
    "beta_over_nu": spatial.fss_exponent(
        scan["G"], scan["m_abs"], scan["m_abs_se"], scan["sizes"], g_in, G_STAR_SE
    ),
}
est = {
    "nu": (1 / fits["nu"].exponent, fits["nu"].exponent_se / fits["nu"].exponent ** 2),
    "gamma_over_nu": (fits["gamma_over_nu"].exponent, fits["gamma_over_nu"].exponent_se),
    "beta_over_nu": (-fits["beta_over_nu"].exponent, fits["beta_over_nu"].exponent_se),
    "binder_star": (float(cr.binder_star[-1]), float(cr.binder_star_se[-1])),
}
for name, (v, se) in est.items():
    ref = {c: spatial.UNIVERSALITY_CLASSES[c][name] for c in spatial.UNIVERSALITY_CLASSES}
    print(f"{name:14s} = {v:.3f} ± {se:.3f}   " + "  ".join(f"{c}: {r:g}" for c, r in ref.items()))
print("verdict from these two sizes:", spatial.universality_verdict(est).confidence)

# %% [markdown]
# ## 3. The verdict of the finite-size-scaling study
#
# The study (`scripts/spatial_fss.py`: $k=3$ with $L/k$ up to 16, the $k$-collapse for
# $k=3,5,7$, equilibration checked by comparing ordered and disordered starts, and the $D=1$
# control, which has no crossing) is too long for a notebook; its recorded results are in
# `scripts/spatial_fss.json`, quoted here.

# %%
study_path = REPO / "scripts" / "spatial_fss.json"
if study_path.exists():
    study = json.loads(Path(study_path).read_text())
    ana = study.get("analysis", {})
    keys = ("G_star", "G_star_se", "binder_star", "binder_star_se", "estimates", "verdict")
    for name in keys:
        if name in ana:
            print(f"{name:15s}", json.dumps(ana[name], default=str)[:600])
    print("other recorded keys:", sorted(set(ana) - set(keys)))
else:
    print(
        f"{study_path} is not in this checkout: run `python scripts/spatial_fss.py` (about an hour)."
    )

# %% [markdown]
# ## 4. Kibble–Zurek, in a paragraph
#
# Generation crosses $G^\ast$ at a finite rate, so the correlation length cannot follow its
# equilibrium divergence: it freezes out when the relaxation time (growing as $\xi^z$) exceeds
# the time left to the transition, and the frozen pattern size scales with the quench time as
# $\tau_Q^{\nu/(1+z\nu)}$ (about $\tau_Q^{0.315}$ for 2-D Ising with $z\approx2.17$, $\tau_Q^{1/4}$
# for mean field). With the exact score of a dataset there would be no lag at all (the reverse
# marginal is $p_t$ exactly); the lag is a property of the patch score, which is not the score of
# its own marginals. The quench time is set by the $\lambda$-family of samplers with the same
# marginals for an exact score (`docs/theory/processes.md#lambda-family`), or by a
# predictor–corrector with $n$ corrector steps. The measurement is the `kibble_zurek` report
# experiment (`gltheory report --only kibble_zurek`); the final domain size also contains the
# coarsening after freeze-out, which carries no KZ exponent.

# %% [markdown]
# ## 5. Consequences for generation
#
# The reduction turns $G^\ast$ into a forward time for any process and window:
# $t^\ast=$ `spatial.time_of_G(process, G*)`, against $t_c^S$ at $G=1$. Patterns are born at
# $t^\ast$, later in generation (smaller $t$) than the linear instability, for every process.

# %%
table = sc.pattern_birth_table(G_STAR, G_STAR_SE)
print(f"G* = {G_STAR:.3f} ± {G_STAR_SE:.3f} (this notebook's two sizes)")
print("process  k    t* (patterns born)      t_c^S (linear instability)")
for r in table:
    print(
        f"{r['process']:7s} {r['window']:2d}   {r['t_star']:.4f} ± {r['t_star_se']:.4f}        {r['t_c_S']:.4f}"
    )

# %% [markdown]
# A generative run (reverse SDE with the exact patch score, OU, $k=3$, $L/k=8$) shows what this
# means along a trajectory. The correlation length of $\varphi=x/b_t$ (Lorentzian estimator) is
# a fraction of a window at $t_c^S$ and grows steadily as $G$ rises; it reaches the lattice size
# only well after $t^\ast$, where the domains coarsen. The same run measures the leverage of a
# pulse: a uniform kick $x\to x+\delta b_t$ (the small-pulse limit of guidance towards the $+$
# image) at one time $t_p$, and the change of the final magnetisation per unit kick, with paired
# trajectories.

# %%
gen = sc.generative_response(jax.random.fold_in(KEY, 200), CFG)
ou3 = next(r for r in table if r["process"] == "OU" and r["window"] == CFG.window)
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
ok = np.isfinite(gen["xi"])
a1.semilogy(gen["t"][ok], gen["xi"][ok] / CFG.window, "o-", ms=3)
a1.set(
    xlabel="forward time t (OU)", ylabel="xi / k", title="correlation length of a generative run"
)
a2.errorbar(gen["pulse_t"], gen["leverage"], gen["leverage_se"], marker="o", capsize=2)
a2.set(xlabel="pulse time t_p", ylabel="d<M_final>/d delta", title="leverage of a kick")
for ax in (a1, a2):
    ax.axvline(ou3["t_c_S"], color="C2", ls="-.", label=f"t_c^S = {ou3['t_c_S']:.3f}")
    ax.axvline(ou3["t_star"], color="C3", ls="--", label=f"t* = {ou3['t_star']:.3f}")
    ax.invert_xaxis()
    ax.legend(fontsize=8)
show(fig, "09_generation")
i_cs = int(np.argmin(np.abs(gen["t"] - ou3["t_c_S"])))
i_st = int(np.argmin(np.abs(gen["t"] - ou3["t_star"])))
print(
    f"xi at t_c^S: {gen['xi'][i_cs]:.3f}, at t*: {gen['xi'][i_st]:.3f} (lattice units; k = {CFG.window})"
)
print(f"leverage: largest at t_p = {gen['peak_t']:.3f}, half of it at t_p = {gen['half_t']:.3f}")

# %% [markdown]
# **Reading the result.** $t_c^S$ is the linear instability of the symmetric point: a detector
# that linearises at $x=0$ (the $q=0$ softening of `docs/theory/nets.md#detecting-critical-time`,
# and so a trained network's measured "$t_c$") finds it, but nothing is critical there: the
# frozen-time lattice at $G=1$ is disordered, with a Gaussian magnetisation ($U=0$) and a
# susceptibility that does not grow with $L$ (the `spatial_class` report rows). The transition,
# where domains of one sign are born, is at $t^\ast$. A uniform kick keeps its full leverage on
# the final magnetisation through the linear regime, past $t_c^S$, and loses it around $t^\ast$:
# by then the lattice has chosen its domains.

# %%
print(f"total {time.perf_counter() - T_START:.0f} s; figures in {OUT.resolve()}")
