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
# # Ginzburg–Landau theory of the patch model: softening modes, correlation length, patterns
#
# With a local, translation-equivariant score the symmetry-breaking bifurcation of generative
# diffusion becomes a spatially extended critical phenomenon (`docs/theory/field.md#spatial-criticality`). This notebook
# uses `gltheory.field` on the two-image patch model ($\pm\mathbf 1$ training images, window
# $k$, periodic lattice, OU process):
#
# 1. **mode spectra** $\mu(q,t)=({\rm SNR}\,K(q)-1)/b_t^2$ soften from $q=0$ at
#    $t_c^S=\tfrac12\ln(1+k^D)$ (closed form vs plane-wave JVPs of the exact score);
# 2. **correlation length**: the linear-response $\xi(t)$ (`docs/theory/field.md#correlation-length`) vs the JVP point response and
#    vs the correlation length of the states measured along reverse trajectories;
# 3. **GL vs exact dynamics**: the time-dependent GL (model A) reverse SDE with $r(t)$,
#    $\kappa(t)$, $u(t)$ of `docs/theory/field.md#gl-coefficients`, run with the same noise as the exact patch-score SDE;
# 4. **patterns** after $t_c$: space–time pictures with $t_c$ marked, the domain length versus
#    $k$ (`docs/theory/field.md#pattern-formation`, $\ell\propto k$), and the emergent wavelength $2\pi/|q^\star|$ of stripe data;
# 5. a **finite-size data collapse** with `gltheory.criticality`.
#
# **Running it.** `GLTHEORY_NB_SMALL=1` gives small batches and few steps (the test suite runs
# it this way); `GLTHEORY_NB_OUT=<folder>` is where the PNG figures go
# (default `notebook_outputs/`).

# %%
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from _setup import SMALL, banner, show

import gltheory as gl
from gltheory import field as F

jax.config.update("jax_enable_x64", True)

PROC = gl.OU()
K = 5  # window of the 1-D runs
L = 128  # 1-D ring
N = 16 if SMALL else 64  # trajectories
N_STEPS = 100 if SMALL else 300
KEY = jax.random.PRNGKey(4)
T0 = time.time()
banner()


def save(fig, name):
    """Tighten the layout of ``fig``, then save (and, in a notebook, display) it."""
    fig.tight_layout()
    show(fig, name)


cp = F.patch_critical_point(PROC, window=K, lattice_ndim=1)
print(f"k={K}: t_c^S = {cp.t_score:.6f}, t_c^D = {cp.t_sde:.6f}, t_c^O = {cp.t_ode}")

# %% [markdown]
# ## 1. Mode spectra soften in time
#
# Lines: $\mu(q,t)$ of `patch_mode_spectrum` (Dirichlet kernel). Dots: plane-wave Rayleigh
# quotients of the exact score's Jacobian at $x=0$ (`gltheory.spectral.mode_stiffness`, one JVP pair
# per $q$). The $q=0$ mode crosses zero first, at $t_c^S$; the reverse-SDE growth rate
# $2\mu+1$ (OU) crosses at $t_c^D$. Right: the 2-D stripe data (width 2) seen through a $5\times5$
# window soften first at $|q^\star|=\pi/2$, not at $q=0$.

# %%
score1 = lambda x, t: gl.scores.uniform_patch_score(PROC, x, t, window=K, lattice_ndim=1)
q1 = gl.spectral.lattice_wavevectors((L,))[: L // 2]  # grid wavevectors 0 <= q < pi
q_line = jnp.linspace(0.0, jnp.pi, 200)[:, None]
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
times = jnp.array([2.0, 1.4, cp.t_sde, 1.0, cp.t_score, 0.7])
jvp_all = jax.jit(jax.vmap(lambda t: gl.spectral.mode_stiffness(score1, jnp.zeros(L), t, q1[::8])))(
    times
)
for t, jvp in zip(times, jvp_all):
    mu = F.patch_mode_spectrum(PROC, t, q_line, window=K)
    axes[0].plot(q_line[:, 0], mu, label=f"t = {float(t):.3f}")
    axes[0].plot(q1[::8, 0], jvp, "k.", ms=4)
axes[0].axhline(0, color="k", lw=0.6)
axes[0].set_ylim(-2.5, 1.5)
axes[0].set(xlabel="q", ylabel=r"$\mu(q,t)$", title=f"score mode spectrum, k={K} (dots: JVP)")
axes[0].legend(fontsize=7)
tt = np.linspace(0.5, 2.5, 200)
for q in (0.0, 0.2, 0.5):
    mu_s = F.patch_mode_spectrum(PROC, tt, jnp.array([q]), window=K)
    mu_d = F.patch_mode_spectrum(PROC, tt, jnp.array([q]), window=K, dynamics="sde")
    axes[1].plot(tt, mu_s, label=f"score, q={q}")
    axes[1].plot(tt, mu_d, "--", label=f"SDE rate, q={q}")
for tc, lab in ((cp.t_score, "$t_c^S$"), (cp.t_sde, "$t_c^D$")):
    axes[1].axvline(tc, color="r", lw=0.7)
    axes[1].text(tc, 2.5, lab, color="r")
axes[1].axhline(0, color="k", lw=0.6)
axes[1].set_ylim(-6, 3)
axes[1].invert_xaxis()
axes[1].set(xlabel="forward time t (generation runs right)", title="softening of the q modes")
axes[1].legend(fontsize=6)
stripes = gl.data.stripes((16, 16), width=2)
cps = F.patch_critical_point(PROC, window=5, images=stripes)
spec = F.patch_mode_spectrum(PROC, cps.t_score, None, window=5, images=stripes)
im = axes[2].imshow(
    np.fft.fftshift(np.asarray(spec)),
    cmap="RdBu_r",
    vmin=-2,
    vmax=2,
    extent=[-np.pi, np.pi, np.pi, -np.pi],
)
axes[2].set(
    title=f"stripes w=2, k=5: $\\mu(q, t_c^S)$, $|q^*|$={float(jnp.linalg.norm(cps.q_star)):.3f}",
    xlabel="$q_2$",
    ylabel="$q_1$",
)
fig.colorbar(im, ax=axes[2])
save(fig, "04_mode_spectra")

# %% [markdown]
# ## 2. Correlation length: linear response vs measurement
#
# Theory (`docs/theory/field.md#correlation-length`): $\xi^2=\kappa/r=\frac{k(k^2-1)}{24}\frac{\bar\alpha}{1-\bar\alpha(1+k)}$ for the
# score and $\xi^2_{\rm SDE}=2\kappa/(2r-1)$ for the reverse SDE. Measurements: (i) the second
# moment of the exact score's response to a point kick at $x=0$
# (`gltheory.spectral.linear_response_length`, one JVP; equal to theory to round-off, because the
# $q^2$ coefficient of the Dirichlet kernel is exact); (ii) the same response measured at the
# actual states $x_t$ of reverse trajectories (average over trajectories), which departs from
# the $x=0$ theory once the states leave the symmetric point; (iii) the Ornstein–Zernike length
# of the states' structure factor (section 3); (iv) the integrated correlation length of the
# denoised field $\mathbb E[y\mid x_t]$ and of its increments between saved times, from the
# structure factors streamed inside the sampler. The check value at $\bar\alpha=\bar\alpha_c/2$:
# $\xi=\sqrt{k(k-1)/24}=0.9129$ for $k=5$.

# %%
consts = F.gl_constants_two_image(K, 1)
t_half = PROC.t_of_alpha_bar(1 / (1 + K) / 2)
print(f"xi(alpha_c/2) = {float(F.gl_correlation_length(consts, PROC, t_half)):.4f} (0.9129)")
t_grid = jnp.linspace(cp.t_score + 0.02, 3.0, 40)
xi_th = F.gl_correlation_length(consts, PROC, t_grid)
xi_th_sde = F.gl_correlation_length(consts, PROC, jnp.linspace(0.5, 3.0, 80), dynamics="sde")
xi_jvp = jax.vmap(lambda t: gl.spectral.linear_response_length(score1, jnp.zeros(L), t))(t_grid)

ts_full = gl.time_grid(PROC, N_STEPS, t_min=1e-3, t_max=3.0)
save_full = list(range(0, N_STEPS + 1, N_STEPS // 50))
stream = F.structure_factor_observer(
    lattice_ndim=1, denoiser=F.tweedie_denoiser(score1, PROC), keep_denoised=True
)
sol = gl.sample(
    score1, PROC, KEY, (N, L), ts=ts_full, observe=lambda x, t: (x, stream(x, t)), save_at=save_full
)
states, streamed = sol.observables
xi_traj = jax.vmap(
    lambda xs, t: jnp.mean(jax.vmap(lambda x: gl.spectral.linear_response_length(score1, x, t))(xs))
)(states, sol.saved_ts)
# sample estimators (`docs/theory/field.md#xi-estimators`) on the denoised field E[y|x_t] and on its increments
xi_den = F.correlation_length(
    streamed["S_denoised"], axes=(-1,), from_structure_factor=True, method="integrated"
)
S_inc = F.increment_structure_factor(streamed["denoised"], lattice_ndim=1)
xi_inc = F.correlation_length(S_inc, axes=(-1,), from_structure_factor=True, method="integrated")
t_inc = 0.5 * (sol.saved_ts[1:] + sol.saved_ts[:-1])

# %% [markdown]
# ## 3. GL (model A) vs exact patch-score dynamics, same noise
#
# `compare_gl_exact` runs the exact two-image patch score and the GL score
# $s^{\rm GL}=-rx+\kappa\Delta x-ux^3$ (lattice Laplacian) through the same sampler with the same
# keys: identical starts and Brownian increments. Early on (linear regime) the two runs agree
# and the states' structure factor is Ornstein–Zernike with a length that follows the
# quasi-static $\xi_{\rm SDE}$ until critical slowing down makes it lag near $t_c^D$; after the
# transition the GL model (a small-amplitude, small-$q$ expansion) still predicts the domain
# pattern: final domain lengths and site-wise sign agreement are printed.

# %%
ts = gl.time_grid(PROC, N_STEPS, t_min=0.6, t_max=3.0)
save_idx = list(range(0, N_STEPS + 1, N_STEPS // 20))
cmp = F.compare_gl_exact(PROC, KEY, lattice_shape=(L,), window=K, n=N, ts=ts, save_at=save_idx)
print(
    f"final domain length (window-smoothed signs at t={float(ts[-1]):.2f}): "
    f"exact {float(cmp.domains_exact.domain_length):.2f} +- {float(cmp.domains_exact.domain_length_se):.2f}, "
    f"GL {float(cmp.domains_gl.domain_length):.2f} +- {float(cmp.domains_gl.domain_length_se):.2f}; "
    f"sign agreement {float(cmp.sign_agreement):.3f}"
)
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
ax = axes[0]
ax.plot(t_grid, xi_th, "k-", label=r"theory $\xi$ (score)")
ax.plot(t_grid[::3], xi_jvp[::3], "ko", mfc="none", label="JVP response at x=0")
ax.plot(jnp.linspace(0.5, 3.0, 80), xi_th_sde, "k--", label=r"theory $\xi_{\rm SDE}$")
ax.plot(sol.saved_ts, xi_traj, "g^-", ms=4, label="JVP response at trajectory states")
ax.plot(sol.saved_ts, xi_den, "mv-", ms=4, label=r"$\xi_{\rm int}$ of $E[y|x_t]$")
ax.plot(t_inc, xi_inc, "c<-", ms=4, label=r"$\xi_{\rm int}$ of increments")
ax.plot(cmp.saved_ts, cmp.xi_exact, "bo-", ms=4, label="states, exact (OZ fit)")
ax.plot(cmp.saved_ts, cmp.xi_gl, "rs--", ms=4, label="states, GL (OZ fit)")
for tc in (cp.t_score, cp.t_sde):
    ax.axvline(tc, color="r", lw=0.6)
ax.set_ylim(0, 6)
ax.invert_xaxis()
ax.set(xlabel="forward time t", ylabel=r"$\xi$", title=f"correlation length, k={K}")
ax.legend(fontsize=6)
qq = gl.spectral.lattice_wavevectors((L,))[:, 0]
order = np.argsort(np.asarray(qq))
for j, c in zip((2, len(save_idx) // 2, len(save_idx) - 1), ("C0", "C1", "C2")):
    axes[1].semilogy(
        qq[order], cmp.S_exact[j][order], color=c, label=f"exact t={float(cmp.saved_ts[j]):.2f}"
    )
    axes[1].semilogy(qq[order], cmp.S_gl[j][order], "--", color=c, label="GL")
axes[1].set(xlabel="q", ylabel="S(q,t) of the states", title="streamed structure factors")
axes[1].legend(fontsize=6)
box = lambda x: sum(jnp.roll(x, s, -1) for s in range(-(K // 2), K // 2 + 1))
axes[2].imshow(
    np.concatenate(
        [np.sign(box(cmp.x_exact[:6])), np.full((1, L), 0.0), np.sign(box(cmp.x_gl[:6]))]
    ),
    aspect="auto",
    cmap="coolwarm",
    interpolation="nearest",
)
axes[2].set(
    title=f"sign(Kx) at t={float(ts[-1]):.2f}: exact (top 6) / GL (bottom 6)", xlabel="site"
)
save(fig, "04_gl_vs_exact")

# %% [markdown]
# ## 4. Patterns after $t_c$
#
# Left: one exact reverse trajectory on the ring as a space–time picture (time runs down), with
# $t_c^S$ and $t_c^D$ marked: frozen $\pm1$ domains (a patch mosaic) appear just after $t_c^D$.
# Middle: the final domain length versus $k$ with a weighted linear fit; `docs/theory/field.md#pattern-formation` predicts
# $\ell\propto k$ ($\kappa\propto k^2$ at a nearly $k$-independent quench rate). Right: 2-D
# samples (two uniform images, $k=3$, FFT-evaluated exact score), and, in the full run, ELS
# samples of stripe data whose structure factor peaks at the softening mode $q^\star$.

# %%
sc = F.domain_length_scaling(
    PROC,
    jax.random.fold_in(KEY, 8),
    windows=[3, 5, 7, 9],
    lattice_shape=(256,),
    n=16 if SMALL else 64,
    ts=ts_full,
)
print(
    f"domain length l(k) = {np.round(np.asarray(sc.length), 2)}; slope l/k = "
    f"{float(sc.slope):.3f} +- {float(sc.slope_se):.3f}, intercept {float(sc.intercept):.2f} +- "
    f"{float(sc.intercept_se):.2f}, log-log exponent {float(sc.exponent):.3f} +- {float(sc.exponent_se):.3f}"
)
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
tsn = np.asarray(sol.saved_ts)  # one trajectory of the section-2 run, saved states
axes[0].imshow(
    np.asarray(states[:, 0]),
    aspect="auto",
    cmap="coolwarm",
    vmin=-1.5,
    vmax=1.5,
    extent=[0, L, tsn[-1], tsn[0]],
)
for tc, lab in ((cp.t_score, "$t_c^S$"), (cp.t_sde, "$t_c^D$")):
    axes[0].axhline(tc, color="k", lw=0.8)
    axes[0].text(2, tc, lab)
axes[0].set(xlabel="site", ylabel="forward time t", title=f"space-time, k={K}")
kk = np.asarray(sc.windows)
axes[1].errorbar(kk, sc.length, sc.length_se, fmt="o")
xs = np.linspace(0, 10, 20)
axes[1].plot(xs, float(sc.intercept) + float(sc.slope) * xs, "k--")
axes[1].set(
    xlabel="window k",
    ylabel=r"final domain length $\ell$",
    title=rf"$\ell$ vs k: exponent {float(sc.exponent):.2f}$\pm${float(sc.exponent_se):.2f}",
)
shape2 = (32, 32)
score2 = F._uniform_score_fft(PROC, 3, shape2, jnp.float64)
s2 = gl.sample(score2, PROC, jax.random.fold_in(KEY, 9), (2,) + shape2, ts=ts_full)
panel = [np.asarray(s2.x[0]), np.asarray(s2.x[1])]
title = "2-D two images, k=3"
if not SMALL:
    bank = gl.patch.bank(stripes, window=5)
    st = gl.sample(
        lambda x, t: gl.patch.score(bank, PROC, x, t),
        PROC,
        jax.random.fold_in(KEY, 10),
        (8, 16, 16),
        ts=gl.time_grid(PROC, 150, t_min=1e-3, t_max=3.0),
    )
    q_pk, q_abs = F.peak_wavevector(st.x)
    print(
        f"stripes: |q*| = {float(jnp.linalg.norm(cps.q_star)):.4f}, peak of S(q) of samples {float(q_abs):.4f}"
    )
    panel.append(np.kron(np.asarray(st.x[0]), np.ones((2, 2))))
    title += f" | stripes ELS, peak |q|={float(q_abs):.2f}"
axes[2].imshow(np.concatenate(panel, axis=1), cmap="coolwarm", vmin=-1.2, vmax=1.2)
axes[2].set(title=title)
axes[2].axis("off")
save(fig, "04_patterns")

# %% [markdown]
# ## 5. Finite-size data collapse
#
# The local decision of the patch score couples the $k^D$ sites of a window through
# $\tanh(a_t(Kx)_i/b_t^2)$: `docs/theory/field.md#pattern-formation` compares it with a Curie–Weiss magnet of $N=k^D$ spins, whose
# mean-field transition only sharpens as $N\to\infty$. Here the exact finite-$N$ Curie–Weiss
# order parameter $\langle m^2\rangle_N(b)$ (by summing over the magnetisation) for
# $N=k^2$, $k=11,19,31,49$, is collapsed with `gltheory.criticality.fit_collapse`
# (Houdayer–Hartmann quality, optimised by BFGS): with sizes $N$ the mean-field FSS ansatz
# $\langle m^2\rangle=N^{\zeta/\nu}f((b-1)N^{1/\nu})$ has $b_c=1$, $\nu=2$, $\zeta=-1$. The fit
# finds $b_c$ within its error bar, while $\nu\approx1.9$ and $\zeta\approx-0.9$ still carry the
# $O(N^{-1/2})$ corrections to scaling (with $N=25..121$ they are $1.7$ and $-0.8$): at the
# window sizes of a real patch model ($N=k^D\lesssim100$) the transition is far from sharp
# (`docs/theory/field.md#pattern-formation`).

# %%
from jax.scipy.special import gammaln  # noqa: E402

from gltheory.criticality import fit_collapse, scale_collapse  # noqa: E402


def cw_m2(n_spins, b):
    m = np.arange(-n_spins, n_spins + 1, 2) / n_spins
    logw = (
        gammaln(n_spins + 1.0)
        - gammaln((n_spins * (1 + m)) / 2 + 1)
        - gammaln((n_spins * (1 - m)) / 2 + 1)
    )
    logw = logw[None, :] + 0.5 * n_spins * np.asarray(b)[:, None] * m[None, :] ** 2
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    return (w * m**2).sum(1) / w.sum(1)


sizes = np.array([121.0, 361.0, 961.0, 2401.0])  # k = 11, 19, 31, 49 in 2-D
b = np.linspace(0.92, 1.08, 31)
a = np.stack([cw_m2(int(n), b) for n in sizes])
da = 0.01 * a  # a 1 % error scale: the quality then measures corrections to scaling
fit = fit_collapse(sizes, b, a, da, rho_c0=0.98, nu0=1.8, zeta0=-0.8)
print(
    f"collapse: b_c = {float(fit.rho_c):.4f} +- {float(fit.errors[0]):.4f} (1), nu = "
    f"{float(fit.nu):.3f} +- {float(fit.errors[1]):.3f} (2), zeta = {float(fit.zeta):.3f} +- "
    f"{float(fit.errors[2]):.3f} (-1), quality {float(fit.quality):.2f}"
)
x, y, dy = scale_collapse(
    jnp.asarray(sizes), jnp.asarray(b), jnp.asarray(a), jnp.asarray(da), fit.rho_c, fit.nu, fit.zeta
)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for i, n in enumerate(sizes):
    axes[0].plot(b, a[i], "o-", ms=3, label=f"N = {int(n)}")
    axes[1].plot(x[i], y[i], "o", ms=3, label=f"N = {int(n)}")
axes[0].set(
    xlabel="coupling b", ylabel=r"$\langle m^2\rangle_N$", title="Curie–Weiss, N = k² spins"
)
axes[1].set(
    xlabel=r"$(b-b_c)N^{1/\nu}$",
    ylabel=r"$N^{-\zeta/\nu}\langle m^2\rangle$",
    title=f"collapse: nu={float(fit.nu):.2f}, zeta={float(fit.zeta):.2f}",
)
axes[0].legend(fontsize=7)
save(fig, "04_data_collapse")
print(f"notebook 04 done in {time.time() - T0:.1f} s")
