# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Trained score networks versus the patch theory
#
# Small equinox networks trained with optax (`gltheory.nets`), measured with the tools of the
# exact theory (`docs/theory/patch.md#mode-softening`, `docs/theory/nets.md#detecting-critical-time`,
# `docs/theory/patch.md#machines`):
#
# 1. a purely convolutional denoiser with receptive field $k=5$ is trained by denoising score
#    matching on the canonical patch model of `docs/theory/patch.md#two-image-score` (two uniform images $\pm\mathbf 1$ on a
#    periodic 1-D lattice), for which the best local equivariant denoiser is the ELS machine
#    of window $k$;
# 2. Kamb & Ganguli's calibration along the network's own DDIM trajectories: the patch size
#    whose ELS score is closest to the network's at every step, the $r^2$ between network and
#    machine denoisers, and samples side by side from the same noise;
# 3. the network's critical time from mode softening (JVP plane-wave probes of its score
#    Jacobian at $x=0$ and along trajectories) and from the correlation-length peak, against
#    the patch theory $t_c^S=\tfrac12\ln(1+k)$, $t_c^D=\tfrac12\,\mathrm{arcsinh}\,k$ and the
#    ideal score of the same data, $\tfrac12\ln(1+L)$;
# 4. on 2-D random binary images: the trained CNN's loss against the exact loss of the best
#    linear (Wiener) denoiser and the Bayes (posterior-mean) loss; in the full run also a
#    small UNet and an MLP baseline.
#
# **Running it.** A jupytext "percent" notebook: open it in Jupyter or run it as a script.
# `GLTHEORY_NB_SMALL=1` gives short training runs (the test suite runs it this way);
# `GLTHEORY_NB_OUT=<folder>` is where the PNG figures go (default `notebook_outputs/`).
# The optional extra `digits` (scikit-learn) adds the 8x8 digits via
# `gltheory.nets.digits_images()`; nothing here needs it.

# %%
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from _setup import SMALL, banner, show

import gltheory as gl
from gltheory import nets
from gltheory.criticality import first_crossing, stiffness_curves

jax.config.update("jax_enable_x64", True)  # theory in float64; the networks run in float32


L, K = 32, 5  # 1-D lattice and the network's receptive field
PROC = gl.OU(5.0)
N_TRAIN = 300 if SMALL else 3000  # optimiser steps (patch model)
N_TRAIN_2D = 200 if SMALL else 2000  # optimiser steps (2-D random binary images)
N_CMP = 6 if SMALL else 16  # trajectories for the machine comparison
N_T_CRIT = 30 if SMALL else 80  # times of the stiffness scans
KEY = jax.random.PRNGKey(7)
T_START = time.perf_counter()
banner()


# %% [markdown]
# ## 1. Training a CNN on the two-image patch model
#
# `ConvDenoiser(1, window=5, radii=(2, 0, 0))`: one 5-tap patch convolution, then two
# pointwise layers, FiLM time conditioning on the log-SNR, circular padding. The training
# objective is $\mathbb E\,(1+{\rm SNR})\,\|D_\theta(x_t,t)-y\|^2/d$ with $\lambda=\ln{\rm SNR}$
# uniform on $[-6,8]$, AdamW with warm-up and cosine decay, gradient clipping and an EMA of
# the weights. Each step's randomness is `fold_in(PRNGKey(seed), step)`, so training can be
# checkpointed and resumed bit-identically (`checkpoint=` in `nets.train`).

# %%
data1 = gl.data.uniform_images((L,))
images1 = data1.images.astype(jnp.float32)
k_net, k_cmp, k_crit, k_2d = jax.random.split(KEY, 4)
net = nets.ConvDenoiser(
    1, window=K, width=16, depth=3, radii=(2, 0, 0), key=k_net, dtype=jnp.float32
)
cfg = nets.TrainConfig(n_steps=N_TRAIN, batch_size=64, chunk=100, learning_rate=1e-2)
t0 = time.perf_counter()
res = nets.train(net, images1, PROC, cfg)
model = res.ema_model
print(f"trained {N_TRAIN} steps in {time.perf_counter() - t0:.1f} s")

fig, ax = plt.subplots(figsize=(6, 3.5))
losses = np.asarray(res.state.losses)
ax.semilogy(np.arange(1, len(losses) + 1), losses, lw=0.6, alpha=0.6, label="batch loss")
w = 50
ax.semilogy(np.arange(w, len(losses) + 1), np.convolve(losses, np.ones(w) / w, "valid"), "k")
ax.set_xlabel("step")
ax.set_ylabel("DSM loss")
ax.set_title("CNN (k = 5) on the two-image patch model")
ax.legend()
show(fig, "07_training_loss")

# %% [markdown]
# ## 2. Network versus patch machines (Kamb & Ganguli calibration)
#
# Along the network's own deterministic DDIM trajectory, at every step: the relative L2
# distance and the cosine similarity between the network's score and the ELS machine of
# window $k\in\{1,3,5,7,9\}$ (3, 5, 7 in the small run), the best window per trajectory (median over trajectories),
# and the $r^2$ between the denoisers. Then the calibrated machine (per-step window) is run
# from the same noise: samples side by side.

# %%
WINDOWS = (3, 5, 7) if SMALL else (1, 3, 5, 7, 9)
cmp = nets.compare_with_machines(model, images1, k_cmp, windows=WINDOWS, n=N_CMP)
ts_c = np.asarray(cmp.ts)
print("best k (L2)    :", np.asarray(cmp.best_k_l2).astype(int))
print("best k (cosine):", np.asarray(cmp.best_k_cos).astype(int))
print("r2 calibrated  :", np.round(np.asarray(cmp.r2_calibrated), 3))
print(f"r2 of the final samples (network vs calibrated machine): {float(cmp.sample_r2):.3f}")

fig, axs = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
for j, k in enumerate(np.asarray(cmp.windows)):
    axs[0].plot(ts_c, np.asarray(cmp.l2[:, j]), marker=".", label=f"k={int(k)}")
    axs[1].plot(ts_c, np.asarray(cmp.r2[:, j]), marker=".", label=f"k={int(k)}")
axs[0].set_yscale("log")
axs[0].set_ylabel("relative L2 score distance (median)")
axs[1].plot(ts_c, np.asarray(cmp.r2_calibrated), "k-", lw=2, label="calibrated")
axs[1].set_ylim(-0.2, 1.02)
axs[1].set_ylabel("r² of denoisers")
for ax in axs[:2]:
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("t (generation →)")
    ax.axvline(0.5 * np.log(1 + K), color="C3", ls="--", lw=1)
    ax.legend(fontsize=7)
gap = np.full((1, L), np.nan)
axs[2].imshow(
    np.concatenate([np.asarray(cmp.net_samples), gap, np.asarray(cmp.machine_samples)]),
    cmap="gray",
    vmin=-1.2,
    vmax=1.2,
    aspect="auto",
)
axs[2].set_title("top: network samples, bottom: calibrated ELS (same noise)")
axs[2].set_xlabel("site")
show(fig, "07_machines")

# %% [markdown]
# ## 3. The network's critical time
#
# The $q=0$ mode of the score Jacobian at $x=0$ (one JVP per time with a constant probe)
# for the trained network and for the exact ELS machine of window 5; the score criterion
# fires where it crosses 0, the reverse-SDE one where it crosses $-\tfrac12$ (OU). Then the
# black-box detectors of `gltheory.criticality` via `nets.score_criticality`: the same
# stiffness averaged along reverse trajectories (its peak) and the correlation-length peak of
# the denoised-field increments, each with a bootstrap standard error.

# %%
ts = gl.time_grid(PROC, N_T_CRIT, kind="log_snr", t_min=0.2, t_max=2.5)
zeros = jnp.zeros((ts.shape[0], 1, L))
els5 = gl.patch.ELS(data1, window=K)  # the exact ELS machine of window 5, a dataset-like value
els = jax.tree_util.Partial(lambda m, x, t: gl.score(m, PROC, x, t), els5)
q0 = jnp.zeros((1, 1))
mu_net = jnp.mean(stiffness_curves(model, zeros, ts, k_crit, q=q0), axis=1)
mu_els = jnp.mean(stiffness_curves(els, zeros, ts, k_crit, q=q0), axis=1)
t_s_th, t_d_th, t_ideal = 0.5 * np.log(1 + K), 0.5 * np.arcsinh(K), 0.5 * np.log(1 + L)
for name, mu in (("network", mu_net), ("ELS k=5", mu_els)):
    t_s, e_s = first_crossing(ts, mu)
    t_d, e_d = first_crossing(ts, mu + 0.5)
    print(
        f"{name:8s}: t_c^S = {float(t_s):.4f} ± {float(e_s):.1g} (theory {t_s_th:.4f}), "
        f"t_c^D = {float(t_d):.4f} ± {float(e_d):.1g} (theory {t_d_th:.4f})"
    )
print(f"ideal (memorising) score of the same data: t_c^S = {t_ideal:.4f}")

crit = nets.score_criticality(
    model, PROC, images1, k_crit, window=K, n=4 if SMALL else 32, ts=ts, n_boot=20 if SMALL else 200
)
print(
    f"trajectory-averaged softening peak: {float(crit.trajectory.t_c):.3f} ± "
    f"{float(crit.trajectory.se):.3f}; xi peak: {float(crit.xi_peak.t_c):.3f} ± "
    f"{float(crit.xi_peak.se):.3f}"
)

fig, axs = plt.subplots(1, 2, figsize=(12, 3.8), layout="constrained")
tt = np.asarray(ts)
axs[0].plot(tt, np.asarray(mu_net), label="trained CNN")
axs[0].plot(tt, np.asarray(mu_els), "--", label="exact ELS k=5")
axs[0].axhline(0, color="k", lw=0.7)
axs[0].axhline(-0.5, color="k", lw=0.7, ls=":")
for lab, tm, c in (("t_c^S", t_s_th, "C3"), ("t_c^D", t_d_th, "C4"), ("ideal", t_ideal, "C5")):
    axs[0].axvline(tm, color=c, ls="--", lw=1, label=f"{lab} = {tm:.3f}")
axs[0].set_ylim(-5, 3)
axs[0].set_xlabel("t")
axs[0].set_ylabel("μ(q=0, t) at x = 0")
axs[0].invert_xaxis()
axs[0].legend(fontsize=7)
axs[1].plot(np.asarray(crit.trajectory.t), np.asarray(crit.trajectory.curve), label="μ along traj.")
ax2 = axs[1].twinx()
ax2.plot(np.asarray(crit.xi_peak.t), np.asarray(crit.xi_peak.curve), "C2", label="ξ increments")
axs[1].axvline(t_s_th, color="C3", ls="--", lw=1)
axs[1].invert_xaxis()
axs[1].set_xlabel("t")
axs[1].set_ylabel("μ(q=0) along trajectories")
ax2.set_ylabel("ξ")
axs[1].legend(loc="upper left", fontsize=7)
ax2.legend(loc="upper right", fontsize=7)
show(fig, "07_criticality")

# %% [markdown]
# ## 4. 2-D random binary images: beating the best linear denoiser
#
# 512 i.i.d. ±1 images of $8\times8$. The best linear (Wiener) denoiser's loss is exact
# from the data covariance (`linear_denoiser_loss`); the Bayes bound is the posterior mean of
# the training set (`gltheory.denoiser`), estimated on the same noise as the network. In the
# full run a small UNet and an MLP are trained too.

# %%
data2 = gl.data.random_binary_images(k_2d, 512, (8, 8))
cfg2 = nets.TrainConfig(
    n_steps=N_TRAIN_2D,
    batch_size=32,
    chunk=50,
    learning_rate=1e-2,
    log_snr_min=-2.0,
    log_snr_max=4.0,
)
rng = (cfg2.log_snr_min, cfg2.log_snr_max)
kk = jax.random.split(k_2d, 3)
nets2 = {"CNN k=3": nets.ConvDenoiser(2, window=3, width=16, depth=2, key=kk[0], dtype=jnp.float32)}
if not SMALL:
    nets2["UNet"] = nets.UNet(2, widths=(16, 32), key=kk[1], dtype=jnp.float32)
    nets2["MLP"] = nets.MLPDenoiser((8, 8), width=256, depth=2, key=kk[2], dtype=jnp.float32)
ev = dict(log_snr_range=rng, n_nodes=8, n_noise=4)
lin = float(nets.linear_denoiser_loss(data2, PROC, log_snr_range=rng, n_nodes=8))
bayes, bayes_se = nets.denoising_loss(
    lambda x, t: gl.denoiser(data2, PROC, x, t), data2, PROC, jax.random.PRNGKey(1), **ev
)
results = {}
for name, n0 in nets2.items():
    r = nets.train(n0, data2, PROC, cfg2)
    results[name] = nets.denoising_loss(r.ema_model, data2, PROC, jax.random.PRNGKey(1), **ev)
print(f"best linear (exact): {lin:.4f};  Bayes (MC): {float(bayes):.4f} ± {float(bayes_se):.4f}")
for name, (lo, se) in results.items():
    print(f"{name:8s}: {float(lo):.4f} ± {float(se):.4f}")

fig, ax = plt.subplots(figsize=(6, 3.5))
names = ["linear (exact)", *results, "Bayes"]
vals = [lin, *[float(v[0]) for v in results.values()], float(bayes)]
errs = [0.0, *[float(v[1]) for v in results.values()], float(bayes_se)]
ax.bar(names, vals, yerr=errs, color=["C7"] + ["C0"] * len(results) + ["C2"])
ax.set_ylabel("DSM loss, λ ∈ [-2, 4]")
ax.set_title("8x8 random binary images")
show(fig, "07_linear_baseline")

print(f"notebook finished in {time.perf_counter() - T_START:.1f} s")
