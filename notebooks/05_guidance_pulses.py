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
# # Guidance pulses at the critical time
#
# The seed papers' practical claim (`docs/theory/guidance.md#guidance-pulses`): classifier-free guidance applied as a
# short pulse at the critical time has far more leverage on the class of a sample than the same
# guidance at a random time. Here the claim is made exact in a toy model and measured:
#
# 1. **Theory.** For two classes $\pm m$ the final class probability $P(+\mid x_t)$ is a
#    martingale of the reverse dynamics, so a pulse of guidance displacement $\varepsilon$ at time
#    $t$ changes the final alignment by $\varepsilon R(t) + O(\varepsilon^2)$, with $R$ the class
#    susceptibility (`gl.observables.class_susceptibility_theory`; `guidance_susceptibility_theory`
#    computes the same number from the guidance field). Finite pulses: `pulse_response_theory`.
# 2. **The pulse experiment at fixed perturbation size** (the caveat of `docs/theory/guidance.md#guidance-pulses`): pulses normalised to
#    the same displacement $\varepsilon=\int w\,g^2\nu\,dt$ at every time on a grid, at $\arg\max R$,
#    and at random times; alignment with the exact posterior classifier; within-class variance.
# 3. **A physics-aware sampler** that estimates the susceptibility online from its own ensemble and
#    fires the pulse at its peak without being told $t_c$.
# 4. **Learned pulse timing**: the sampler is differentiated with respect to the pulse centre and
#    width (fixed keys, smooth pulse) and optimised with optax.
# 5. **Lattice data**: horizontal vs vertical stripes with class-conditional patch scores and a
#    patch-statistics classifier; pulses at the patch-model critical time vs random times.
#
# **Running it.** `GLTHEORY_NB_SMALL=1` gives small sizes (the test suite runs it this way);
# `GLTHEORY_NB_OUT=<folder>` is where the PNG figures go (default `notebook_outputs/`).

# %%
import math
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _setup import SMALL, banner, show  # noqa: E402

import gltheory as gl  # noqa: E402
from gltheory import data as gd, guidance as G, observables as ob, spectral  # noqa: E402

N = 600 if SMALL else 16000  # trajectories per pulse setting
N_STEPS = 64 if SMALL else 128  # Euler-Maruyama steps from T = 2 to t = 0.02
N_LEARN = 300 if SMALL else 4000
N_ITER = 6 if SMALL else 60
N_LAT = 16 if SMALL else 256  # lattice samples per setting
EPS = 0.3  # guidance displacement of every pulse
PROC = gl.OU(2.0)
KEY = jax.random.PRNGKey(5)
T0 = time.perf_counter()
banner()


# %% [markdown]
# ## 1. Class susceptibility and the three critical times
#
# Two deltas $\pm1$ in 1-D ($\Lambda=1$) under OU: $t_c^S=\tfrac12\ln2$, $t_c^D=\tfrac12\,\mathrm{arcsinh}\,1$,
# and $\arg\max_tR$ by quadrature. The guidance susceptibility $R_g$ (response to a unit
# displacement by the guidance field, whose strength depends on the state) coincides with $R$.

# %%
data = G.two_class_deltas(1.0)
t_star, r_max = ob.class_susceptibility_peak(1.0, 0.0, process=PROC)
t_star = float(t_star)
t_s, t_d = 0.5 * math.log(2), 0.5 * math.asinh(1.0)
tt = jnp.linspace(0.02, 1.6, 300)
R = ob.class_susceptibility_theory(1.0, 0.0, tt, process=PROC)
Rg = G.guidance_susceptibility_theory(1.0, 0.0, tt, process=PROC)
print(f"argmax R = {t_star:.4f} (R_max = {float(r_max):.4f}); t_c^S = {t_s:.4f}, t_c^D = {t_d:.4f}")
print(f"max |R_g - R| = {float(jnp.max(jnp.abs(Rg - R))):.1e}")
fig, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
ax.plot(tt, R, "k", label="R(t)")
ax.plot(tt, Rg, "C1--", label="R_g(t) (guidance field)")
for tm, lab, c in ((t_star, "argmax R", "C0"), (t_s, "t_c^S", "C2"), (t_d, "t_c^D", "C3")):
    ax.axvline(tm, color=c, ls=":", label=f"{lab} = {tm:.3f}")
ax.set_xlabel("t (forward, OU)")
ax.set_ylabel("class susceptibility")
ax.legend(fontsize=8)
show(fig, "susceptibility")

# %% [markdown]
# ## 2. Alignment vs pulse time at fixed perturbation size
#
# One-step box pulses of displacement $\varepsilon$ at grid times, plus one row of pulses at a
# random grid time per trajectory; all rows share trajectories (paired) and run as one batch.
# Two sizes: $\varepsilon=0.3$ (fraction of samples in the class; theory: the exact Euler-map
# response, `pulse_response_theory(kind="euler")`) and $\varepsilon=0.02$, the linear regime, where
# the gain is read from the exact class posterior right after the pulse (a martingale, no flip
# noise) and must equal $\varepsilon R(t)$. Note the nonlinearity: at $\varepsilon=0.3$ the best
# one-step pulse sits *later* in generation than $\arg\max R$, because the guidance field
# $\propto 1-\tanh(c_tq)$ concentrates on trajectories heading to the wrong class; only the
# linear response peaks exactly at $\arg\max R$ (the report row checks this within 1-2 % of $t$).

# %%
ts = jnp.linspace(2.0, 0.02, N_STEPS + 1)
tsn = np.asarray(ts)
h = float(ts[0] - ts[1])
x0 = data.forward_sample(PROC, jax.random.fold_in(KEY, 1), N, ts[0])


def nu(t):
    return G.two_cluster_guidance_scale(1.0, 0.0, t, process=PROC)


EPS_LIN = 0.02
grid_idx = np.arange(N_STEPS - 2, N_STEPS // 3, -(3 if SMALL else 2))
centres = tsn[grid_idx]
k = len(centres)
rand_c = G.random_pulse_centres(jax.random.fold_in(KEY, 2), N, h, ts)
snap = jnp.asarray(tsn[:-1])[jnp.argmin(jnp.abs(tsn[None, :-1] - rand_c[:, None]), axis=1)]
t_crit = float(tsn[np.argmin(np.abs(tsn - t_star))])
lin_c = tsn[np.abs(tsn - t_star) <= 0.2]  # every grid time near the peak
kl = len(lin_c)
rows = jnp.concatenate(
    [
        jnp.broadcast_to(jnp.asarray(centres)[:, None], (k, N)),
        jnp.broadcast_to(jnp.asarray(lin_c)[:, None], (kl, N)),
        jnp.full((1, N), t_crit),
        snap[None],
    ]
)
eps_rows = jnp.asarray([EPS] * k + [EPS_LIN] * kl + [EPS, EPS])
scan = G.pulse_scan(
    data,
    PROC,
    jax.random.fold_in(KEY, 3),
    x0,
    rows,
    width=h,
    eps=eps_rows,
    ts=ts,
    nu=nu,
    estimator="posterior",
)
fh = np.asarray(scan.final_hits)  # indicators of the final class, per row
al = fh.mean(1)
se = np.sqrt(al * (1 - al) / N)
theory = G.pulse_response_theory(1.0, 0.0, jnp.asarray(centres), EPS, kind="euler", process=PROC)
th_rand = float(jnp.mean(G.pulse_response_theory(1.0, 0.0, ts[:-1], EPS, kind="euler")))
ic, ir = k + kl, k + kl + 1
d_cr, d_cr_se = G.paired_difference(fh[ic], fh[ir])
print(
    f"critical {al[ic]:.4f} ± {se[ic]:.4f}, random {al[ir]:.4f} ± {se[ir]:.4f} "
    f"(theory {th_rand:.4f}); paired difference {float(d_cr):.4f} ± {float(d_cr_se):.4f} = "
    f"{float(d_cr / d_cr_se):.1f} SE"
)
t_pk, t_pk_se = G.alignment_curve_peak(lin_c, scan.paired[k : k + kl], jax.random.fold_in(KEY, 12))
print(f"linear regime: MC peak {float(t_pk):.4f} ± {float(t_pk_se):.4f} vs argmax R {t_star:.4f}")

fig, (ax, cx, bx) = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
ax.errorbar(centres, al[:k], 3 * se[:k], fmt="o", ms=3, label="MC ± 3 SE")
ax.plot(centres, theory, "k-", lw=1, label="exact (Euler map)")
ax.axhline(0.5, color="0.5", ls=":", label="unguided")
for tm, lab, c in ((t_star, "argmax R", "C0"), (t_s, "t_c^S", "C2"), (t_d, "t_c^D", "C3")):
    ax.axvline(tm, color=c, ls=":", label=lab)
ax.set_xlabel("pulse time")
ax.set_ylabel("class alignment")
ax.set_title(f"ε = {EPS} (nonlinear)")
ax.legend(fontsize=7)
r_c = ob.class_susceptibility_theory(1.0, 0.0, jnp.asarray(lin_c), process=PROC)
cx.errorbar(
    lin_c,
    scan.gain[k : k + kl] / EPS_LIN,
    3 * scan.gain_se[k : k + kl] / EPS_LIN,
    fmt="o",
    ms=3,
    label="MC gain / ε ± 3 SE",
)
cx.plot(lin_c, r_c, "k-", lw=1, label="R(t)")
cx.axvline(t_star, color="C0", ls=":", label="argmax R")
cx.axvline(float(t_pk), color="C3", ls="--", label="MC peak (cubic fit)")
cx.set_xlabel("pulse time")
cx.set_title(f"ε = {EPS_LIN} (linear response)")
cx.legend(fontsize=7)
labels = ["random t", "argmax R"]
bx.bar(labels, [al[ir], al[ic]], yerr=[3 * se[ir], 3 * se[ic]], capsize=5, color=["C1", "C0"])
bx.axhline(0.5, color="0.5", ls=":")
bx.set_ylim(0.4, max(al[ic], al[ir]) + 0.06)
bx.set_ylabel(f"class alignment, ε = {EPS} (± 3 SE)")
show(fig, "alignment_vs_pulse_time")

# %% [markdown]
# **Diversity.** With delta classes every aligned sample sits at the class point; Gaussian classes
# $\mathcal N(\pm1, 0.25)$ show how strong constant CFG collapses the class (the within-class
# variance of the aligned samples drops below the truncated class variance).

# %%
gdat = G.two_class_gaussians(1.0, 0.25)
xg = gdat.forward_sample(PROC, jax.random.fold_in(KEY, 4), N, ts[0])
for w in (0.0, 1.0, 3.0):
    est = G.pulse_alignment(gdat, PROC, jax.random.fold_in(KEY, 5), xg, G.ConstantCFG(w), ts=ts)
    print(
        f"CFG w={w:g}: alignment {float(est.alignment):.3f}, within-class variance {float(est.diversity):.4f}"
    )

# %% [markdown]
# ## 3. A physics-aware sampler
#
# The sampler estimates $\hat R(t)=\overline{\nabla_xP(c\mid x_t)\cdot(s_c-s_u)/\nu}$ from its running
# ensemble with one JVP per step and fires a 3-step pulse when $\hat R$ falls just below its running
# maximum.

# %%
pa = G.physics_aware_sample(data, PROC, jax.random.fold_in(KEY, 3), x0, ts=ts, eps=EPS, n_pulse=3)
pa_align = float(jnp.mean(data.classify(PROC, pa.x, ts[-1]) == 0))
print(f"fired at t = {float(pa.fire_time):.4f} (argmax R = {t_star:.4f}); alignment {pa_align:.4f}")
fig, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
ax.plot(tsn[:-1], pa.r_hat, "C0", label="online estimate R̂(t)")
ax.plot(
    tsn[:-1], ob.class_susceptibility_theory(1.0, 0.0, ts[:-1], process=PROC), "k--", label="R(t)"
)
ax.axvline(float(pa.fire_time), color="C3", label="fired")
ax.axvline(t_star, color="C0", ls=":", label="argmax R")
ax.set_xlim(0, 1.5)
ax.set_xlabel("t")
ax.legend(fontsize=8)
show(fig, "physics_aware")

# %% [markdown]
# ## 4. Learned pulse timing
#
# Objective: the mean exact class posterior at $t=0.1$ (after the pulse), with fixed keys and start
# states; a smooth pulse of displacement $0.1$; centre and width optimised with `optax.adam`, then
# a few Newton steps in the centre (same keys). The learned centre estimates the optimum of the
# *expected* objective at the learned width: the same Euler–Maruyama chain, grid and finite
# $\varepsilon$, computed by exact quadrature of the chain's transition densities
# (`discrete_optimal_pulse_centre`). The linear-response optimum (`optimal_pulse_centre`: exact
# sampler, $\varepsilon\to0$) sits ~0.01 higher. SE: delta method, SE of $\partial_cJ$ over
# trajectories divided by the curvature of the expected objective.

# %%
ts_l = jnp.linspace(2.0, 0.1, 97)
x_l = data.forward_sample(PROC, jax.random.fold_in(KEY, 6), N_LEARN, ts_l[0])
lp = G.learn_pulse(
    data,
    PROC,
    jax.random.fold_in(KEY, 7),
    x_l,
    ts=ts_l,
    eps=0.1,
    centre=0.7,
    width=0.3,
    width_min=0.1,
    n_iter=N_ITER,
    learning_rate=0.03,
)
c_opt, _, curv = G.discrete_optimal_pulse_centre(
    data, PROC, width=lp.width, eps=0.1, ts=ts_l, t_lo=0.15, t_hi=1.2
)
c_lin, _ = G.optimal_pulse_centre(
    1.0, 0.0, width=lp.width, shape="smooth", process=PROC, ts=ts_l, t_lo=0.15, t_hi=1.2
)
c_se = float(lp.grad_se) / abs(float(curv))
print(
    f"learned centre {float(lp.centre):.4f} ± {c_se:.4f}, width {float(lp.width):.3f}; "
    f"optimum of the same objective {float(c_opt):.4f}; linear response {float(c_lin):.4f}; "
    f"argmax R {t_star:.4f}"
)
fig, ax = plt.subplots(figsize=(6, 3.4), layout="constrained")
ax.plot(lp.history[:, 0], "C0", label="centre")
ax.plot(lp.history[:, 1], "C1", label="width")
ax.axhline(float(c_opt), color="k", ls="--", label="optimum of the same objective (same width)")
ax.axhline(float(c_lin), color="0.5", ls="-.", label="linear-response optimum")
ax.axhline(t_star, color="C0", ls=":", label="argmax R")
ax.set_xlabel("optax iteration")
ax.legend(fontsize=8)
show(fig, "learned_pulse")

# %% [markdown]
# ## 5. Lattice data: horizontal vs vertical stripes
#
# Class-conditional ELS patch scores ($3\times3$ window); the unconditional model is the same
# machine on all images. $\nu(t)$ is the RMS guidance field over forward samples, and the pulse
# time is the patch-model critical time $\bar\alpha_c=1/(1+\max_q\hat C_k(q))$.

# %%
L = 8
vert = gd.stripes((L, L), width=2, orientation="vertical")
horiz = gd.stripes((L, L), width=2, orientation="horizontal")
lat = G.class_lattice([vert, horiz], window=3)
ab_c = spectral.critical_alpha_bar(
    gl.LatticeImages(jnp.concatenate([vert.images, horiz.images])), 3
).alpha_bar
t_lat = float(-0.5 * jnp.log(ab_c))
ts_lat = jnp.linspace(2.0, 0.02, 33 if SMALL else 81)
h_lat = float(ts_lat[0] - ts_lat[1])
y_ref = jnp.concatenate([vert.images, horiz.images])
cond, unc = G.ClassScore(lat, PROC, 0), G.ClassScore(lat, PROC, None)


def nu_lat(t):
    z = jax.random.normal(jax.random.fold_in(KEY, 8), y_ref.shape)
    return G.guidance_scale(cond, unc, PROC.a(t) * y_ref + PROC.b(t) * z, t)


EPS_LAT = 0.5 * L  # RMS displacement 0.5 per site (nu is the norm over the whole image)
x_lat = PROC.b(ts_lat[0]) * jax.random.normal(jax.random.fold_in(KEY, 9), (N_LAT, L, L))
r_lat = G.random_pulse_centres(jax.random.fold_in(KEY, 10), N_LAT, 2 * h_lat, ts_lat)
lat_rows = jnp.stack([jnp.full((N_LAT,), t_lat), r_lat])
lscan = G.pulse_scan(
    lat,
    PROC,
    jax.random.fold_in(KEY, 11),
    x_lat,
    lat_rows,
    width=2 * h_lat,
    eps=EPS_LAT,
    ts=ts_lat,
    nu=nu_lat,
)
print(
    f"lattice t_c = {t_lat:.3f}: alignment critical {float(lscan.alignment[0]):.3f} ± "
    f"{float(lscan.se[0]):.3f}, random {float(lscan.alignment[1]):.3f} ± {float(lscan.se[1]):.3f}, "
    f"unguided {float(lscan.baseline):.3f}"
)
d_lat, d_lat_se = G.paired_difference(lscan.hits[0], lscan.hits[1])
print(f"lattice critical - random (paired): {float(d_lat):.3f} ± {float(d_lat_se):.3f}")
print(
    f"within-class variance per site: critical {float(lscan.diversity[0]):.3f}, random {float(lscan.diversity[1]):.3f}"
)
# the final states of the critical-pulse row (rows are stacked after the unguided baseline)
show_x = np.asarray(lscan.final_states[0][:6])
fig, axs = plt.subplots(1, 6, figsize=(9, 1.8), layout="constrained")
for a_, im in zip(axs, show_x):
    a_.imshow(im, cmap="gray", vmin=-1.2, vmax=1.2)
    a_.set_axis_off()
fig.suptitle("pulse towards 'vertical' at the patch critical time")
show(fig, "lattice_samples")
print(f"total {time.perf_counter() - T0:.1f} s")
