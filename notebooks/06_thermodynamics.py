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
# # Non-equilibrium thermodynamics of generation
#
# `gltheory.thermo` (`docs/theory/thermo.md#stochastic-thermodynamics` and `docs/theory/cloning.md#collapse`):
#
# 1. the mean **entropy-production rate** $\Pi(t)=\frac2{g^2}\mathbb E\|fx-\tfrac12g^2s\|^2$ of the
#    forward process (and, identically, of generation), by quadrature and along trajectories;
# 2. its total equals the **KL drop** $\mathrm{KL}(p_{t_0}\|\mathcal N)-\mathrm{KL}(p_{t_1}\|\mathcal N)$
#    for every VP schedule;
# 3. **trajectory thermodynamics**: system, medium (Stratonovich) and total entropy per
#    trajectory, the integral and detailed (Crooks) fluctuation theorems;
# 4. the **Franz–Parisi potential** of the posterior for two clusters: the free-energy gap
#    between the same-cluster and the other-cluster states is $2\kappa_t^2$, equal to 2 at the
#    mean-field critical time $t_c^S$;
# 5. **collapse** (Biroli et al.): closed form vs the excess-entropy estimator and the
#    Franz–Parisi condensation of an empirical dataset; the three regimes on one time axis.
#
# `GLTHEORY_NB_SMALL=1` gives small sizes; `GLTHEORY_NB_OUT=<folder>` is where figures go.

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
from gltheory import thermo as th  # noqa: E402

N_TRAJ = 1500 if SMALL else 20000
N_STEPS = 150 if SMALL else 800
N_FP = 800 if SMALL else 6000
N_COLLAPSE = 200 if SMALL else 1000
KEY = jax.random.key(6)
T_START = time.perf_counter()
banner()


# %% [markdown]
# ## 1. Entropy-production rate
#
# Data $\tfrac12\mathcal N(\pm1.5, 0.5)$ in 1-D. $\Pi(t)$ by quadrature (trapezoid in the
# standardised variable of each mixture component, score by autodiff of $\ln p_t$) for OU and
# the linear VP schedule, with the score critical time
# $t_c^S=\tfrac12\ln(1+\mu^2-\sigma^2)$ (`docs/theory/critical-times.md#general-data`) marked. Entropy is produced where the
# density is reorganised, i.e. through the speciation window. The Gaussian closed form of
# `docs/theory/thermo.md#entropy-production` is checked on the way.

# %%
GM = gl.GaussianMixture(jnp.array([[1.5], [-1.5]]), jnp.array([0.5, 0.5]))
OU = gl.OU(4.0)
T_CS = 0.5 * math.log(1 + 1.5**2 - 0.5)
t = jnp.linspace(0.01, 3.0, 300)
pi_ou = th.entropy_production_rate(GM, OU, t)
g = gl.Gaussian(jnp.zeros(1), 2.5)
err = jnp.max(
    jnp.abs(
        th.entropy_production_rate(g, OU, t)
        / th.gaussian_entropy_production_rate(OU, t, sigma2=2.5)
        - 1
    )
)
print(f"Gaussian data: quadrature vs closed form, max relative error {float(err):.1e}")
vp = gl.VP()
t_vp = vp.t_of_snr(OU.snr(t))  # same SNR values on the VP clock
pi_vp = th.entropy_production_rate(GM, vp, t_vp)

fig, ax = plt.subplots(1, 2, figsize=(11, 4))
ax[0].plot(t, pi_ou, label="OU")
ax[0].axvline(T_CS, color="C2", ls="--", label=f"$t_c^S$ = {T_CS:.3f}")
ax[0].set(xlabel="t (OU)", ylabel="Π(t)", yscale="log", title="entropy-production rate")
ax[0].legend()
# per unit log-SNR the rate is schedule independent: Pi |dt/du| = (b^2/2) E|x+s|^2
u = OU.log_snr(t)
ax[1].plot(u, pi_ou * OU.b2(t) / OU.g2(t), label="OU")
ax[1].plot(u, pi_vp * vp.b2(t_vp) / vp.g2(t_vp), "--", label="VP linear")
ax[1].set(xlabel="ln SNR", ylabel="Π |dt/d ln SNR|", title="per unit log-SNR: same curve")
ax[1].legend()
show(fig, "06_rate")

# %% [markdown]
# ## 2. Total entropy production = KL drop (OU/VP), = entropy change (VE)

# %%
for name, proc in [("OU", OU), ("VP linear", vp), ("VP cosine", gl.VP("cosine"))]:
    t0, t1 = 1e-3 * float(proc.T), 0.9 * float(proc.T)
    tot = th.total_entropy_production(GM, proc, t0, t1)
    kl = th.kl_to_normal(GM, proc, jnp.array([t0, t1]))
    print(f"{name:10s} total EP {float(tot):.12f}   KL drop {float(kl[0] - kl[1]):.12f}")
ve = gl.VE()
tot = th.total_entropy_production(GM, ve, 0.02, 0.8)
h = th.marginal_entropy(GM, ve, jnp.array([0.02, 0.8]))
print(f"VE         total EP {float(tot):.12f}   H change {float(h[1] - h[0]):.12f}")

# %% [markdown]
# ## 3. Trajectories: fluctuation theorems
#
# Exact-score reverse OU (Euler–Maruyama, the sampler's noise) from the exact $p_T$; system
# entropy $\ln p_T(x_T)-\ln p_{t_{\min}}(x_{t_{\min}})$, medium entropy
# $\int(x+2s)\circ dx$ (midpoint rule), all accumulated inside the scan. The detailed FT is
# checked in Crooks form against the reversed-protocol process started from $p_{t_{\min}}$.

# %%
T_MIN = 0.02
ts = gl.time_grid(OU, N_STEPS, t_min=T_MIN)
score_fn = th.exact_score_fn(GM, OU)
logp = th.exact_log_prob_fn(GM, OU)
k1, k2, k3, k4 = jax.random.split(KEY, 4)


def start(k, t0):
    ka, kb = jax.random.split(k)
    y = GM.sample(ka, N_TRAJ)
    return OU.a(t0) * y + OU.b(t0) * jax.random.normal(kb, y.shape)


rev = th.trajectory_entropy(score_fn, logp, OU, k2, start(k1, OU.T), ts=ts)
bwd = th.trajectory_entropy(
    score_fn, logp, OU, k4, start(k3, T_MIN), ts=ts[::-1], direction="reversed_protocol"
)
ift = th.integral_fluctuation_theorem(rev.total)
kl = th.kl_to_normal(GM, OU, jnp.array([T_MIN, float(OU.T)]))
se_tot = float(jnp.std(rev.total)) / math.sqrt(N_TRAJ)
print(f"<exp(-Δs_tot)> = {float(ift.mean):.4f} ± {float(ift.se):.4f}")
print(
    f"<Δs_tot> = {float(jnp.mean(rev.total)):.4f} ± {se_tot:.4f}   KL drop {float(kl[0] - kl[1]):.4f}"
)
print(f"<Δs_sys> = {float(jnp.mean(rev.system)):.4f}, <Δs_med> = {float(jnp.mean(rev.medium)):.4f}")
dft = th.detailed_fluctuation_theorem(rev.total, bwd.total, bins=10)
print(f"Crooks slope {float(dft.slope):.3f} ± {float(dft.slope_se):.3f}")

fig, ax = plt.subplots(1, 3, figsize=(15, 4))
ax[0].hist(np.asarray(rev.total), 60, density=True, alpha=0.6, label="generation $P_F(s)$")
ax[0].hist(-np.asarray(bwd.total), 60, density=True, alpha=0.6, label="reversed protocol $P_B(-s)$")
ax[0].set(xlabel="s", title="total entropy production")
ax[0].legend()
ok = np.isfinite(dft.log_ratio)
ax[1].errorbar(dft.s[ok], dft.log_ratio[ok], 3 * dft.se[ok], fmt="o", capsize=3)
ax[1].plot(dft.s[ok], dft.s[ok], "k--", label="slope 1")
ax[1].set(xlabel="s", ylabel="ln P_F(s)/P_B(-s)", title="detailed FT (±3 SE)")
ax[1].legend()
ax[2].plot(ts[:-1], rev.rate, ".", ms=3, label="along trajectories")
ax[2].plot(t, pi_ou, "k", lw=1, label="quadrature")
ax[2].axvline(T_CS, color="C2", ls="--")
ax[2].set(xlabel="t", yscale="log", title="Π(t) along generation")
ax[2].legend()
show(fig, "06_fluctuation_theorems")

# %% [markdown]
# ## 4. Franz–Parisi potential of the posterior, two clusters
#
# $\tfrac12\mathcal N(\pm m, I)$ in $d=64$, $\|m\|^2=d$: $V_t(q)$ for the overlap
# $q=y\cdot y^*/d$ of a posterior sample with a planted reference. At high noise the posterior
# is the prior: two equivalent states, same cluster ($q\approx+1$) and other cluster
# ($q\approx-1$). The other-cluster state is lifted by $2\kappa_t^2$, which crosses 2 at
# $t_c^S=\tfrac12\ln d$, and disappears at small $t$ (one state).

# %%
d = 64
m = jnp.ones(d)
TWO = gl.GaussianMixture(jnp.stack([m, -m]), jnp.array([1.0, 1.0]))
P_OU = gl.OU(10.0)
t_s = 0.5 * math.log(d)
q = jnp.linspace(-2.5, 2.5, 251)
fig, ax = plt.subplots(figsize=(7, 4.5))
for tt in (t_s + 1.0, t_s + 0.5, t_s, t_s - 0.5, 0.3):
    fp = th.franz_parisi_potential(TWO, P_OU, tt, q, key=k1, n=N_FP)
    V = np.asarray(fp.V)
    mins = th.local_minima(V)
    gap = V[mins[0]] - V[mins[-1]] if len(mins) == 2 else float("nan")
    a2 = math.exp(-2 * tt)
    print(f"t = {tt:.3f}: {len(mins)} minima, gap {gap:.3f}, 2 kappa^2 = {2 * a2 * d:.3f}")
    ax.plot(q, V - V.min(), label=f"t = {tt:.2f}")
ax.set(xlabel="q", ylabel="V_t(q) - min", ylim=(-0.5, 12), title=f"Franz–Parisi, d = {d}")
ax.legend()
show(fig, "06_franz_parisi")

# %% [markdown]
# ## 5. Collapse and the three regimes
#
# $P=1000$ points from $\mathcal N(0, I_{32})$: Biroli's $t_C=\tfrac12\ln(1+\sigma^2/(P^{2/N}-1))$,
# the excess-entropy criterion $f(t)$ on training samples ($=H(\mu\mid x_t)/N$) and held-out
# samples (zero crossing ≈ $t_C$), and the Franz–Parisi condensation $V(Q_0)=V(0)$.

# %%
N, P = 32, 1000
pts = jax.random.normal(k2, (P, N))
held = jax.random.normal(k3, (P, N))
t_c = float(th.collapse_time(P, N, 1.0))
tsc = jnp.linspace(0.1, 2.0, 24 if SMALL else 60)
f_tr = th.excess_entropy(pts, P_OU, tsc, key=k4, n=N_COLLAPSE)
f_te = th.excess_entropy(pts, P_OU, tsc, key=k4, n=N_COLLAPSE, test_points=held)
fpe = th.franz_parisi_empirical(gl.DeltaMixture(pts), P_OU, tsc, key=k4, n=N_COLLAPSE)
t_est = th.collapse_time_estimate(tsc, f_te.mean)
print(f"t_C closed form {t_c:.3f}, held-out excess-entropy zero {t_est:.3f}")
a2 = np.exp(-2 * np.asarray(tsc))
f_th = math.log(P) / N + 0.5 * np.log(1 - a2)
fig, ax = plt.subplots(1, 2, figsize=(12, 4))
ax[0].plot(tsc, np.maximum(f_th, 0), "k", label="theory max(f, 0)")
ax[0].plot(tsc, f_tr.mean, label="training samples")
ax[0].errorbar(tsc, f_te.mean, 3 * f_te.se, fmt=".", label="held-out ± 3 SE")
ax[0].axvline(t_c, color="C2", ls="--", label=f"$t_C$ = {t_c:.3f}")
ax[0].set(xlabel="t", ylabel="f(t)", ylim=(-0.3, None), title="excess entropy")
ax[0].legend(fontsize=8)
ax[1].plot(tsc, fpe.v_self, label="V(Q0) = -E ln w*")
ax[1].plot(tsc, fpe.v_other, label="V(0) = -E ln(1-w*)")
ax[1].axvline(t_c, color="C2", ls="--")
ax[1].set(xlabel="t", yscale="log", title="Franz–Parisi, empirical dataset")
ax[1].legend()
show(fig, "06_collapse")

# %% [markdown]
# Three regimes on one axis for $\tfrac12\mathcal N(\pm m, I)$, $d=32$, $\|m\|^2=d$, $P=1000$
# training points: noise ($t>t_S$), speciation ($t_C<t<t_S$), collapse ($t<t_C$).

# %%
m32 = jnp.ones(32)
reg = th.dynamical_regimes(
    gl.GaussianMixture(jnp.stack([m32, -m32]), jnp.array([1.0, 1.0])), P_OU, P
)
print(reg)
fig, ax = plt.subplots(figsize=(8, 1.8))
ax.axvspan(0, reg.t_collapse, color="C3", alpha=0.3, label="collapse")
ax.axvspan(reg.t_collapse, reg.t_score, color="C1", alpha=0.3, label="speciation")
ax.axvspan(reg.t_score, 4.0, color="C0", alpha=0.3, label="noise")
ax.axvline(reg.t_sde, color="k", ls=":", label="$t_c^D$")
ax.set(xlim=(0, 4), xlabel="t (OU)", yticks=[])
ax.legend(ncol=4, fontsize=8, loc="upper center")
show(fig, "06_regimes")

# %%
print(f"total time {time.perf_counter() - T_START:.1f} s")
