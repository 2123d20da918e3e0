r"""Trained score networks (equinox + optax) measured with the tools of the exact theory.

THEORY.md §4.6 (detecting $t_c$ in a trained model) and §7 (Kamb & Ganguli's patch machines).
Three parts:

1. **Networks.** Denoisers $F_\theta(\tilde x,\lambda)$ of one lattice image (shape ``(L,)`` or
   ``(H, W)``, one channel) conditioned on the log-SNR $\lambda=\ln(a_t^2/b_t^2)$:
   :class:`ConvDenoiser` (purely convolutional, receptive field exactly ``window``, circular or
   zero padding, FiLM time conditioning), :class:`UNet` (two-level, circular padding) and
   :class:`MLPDenoiser` (fully connected baseline). :class:`ScoreNetwork` turns one into a
   score ``score_fn(x, t)`` for :func:`gltheory.sample` and every spectral probe, through the
   process's $a_t$, $b_t$:
   $$\tilde x = c_{\rm in}x,\quad c_{\rm in}=(a_t^2\sigma_{\rm d}^2+b_t^2)^{-1/2},\qquad
   D(x,t)=\begin{cases}F_\theta(\tilde x,\lambda)&\text{"denoiser" (default)}\\
   (x-b_tF_\theta(\tilde x,\lambda))/a_t&\text{"epsilon"}\\
   \sigma_{\rm d}^2a_tc_{\rm in}^2\,x+\sigma_{\rm d}b_tc_{\rm in}F_\theta(\tilde x,\lambda)
   &\text{"edm" (Karras et al.'s skip form)}\end{cases},\qquad
   s(x,t)=\frac{a_tD(x,t)-x}{b_t^2}$$
   (THEORY §1.2). Since $c_{\rm in}x=(y+\sigma z)/\sqrt{\sigma_{\rm d}^2+\sigma^2}$ with
   $\sigma=b_t/a_t$, a network trained under one process serves every process (OU, VP, VE)
   with the same log-SNR range.
2. **Training** by denoising score matching with optax (AdamW, warm-up + cosine schedule,
   global-norm clipping, EMA of the weights),
   $$\mathcal L(\theta)=\mathbb E_{\lambda\sim U[\lambda_{\min},\lambda_{\max}]}\,
   \mathbb E_{y,z}\;w(\lambda)\,\tfrac1d\|D_\theta(a y+bz,t_\lambda)-y\|^2,\qquad
   w=1+{\rm SNR}\ (\text{default}),$$
   on lattice datasets (:mod:`gltheory.data`) or scikit-learn's 8x8 digits
   (:func:`digits_images`, optional extra ``digits``). The randomness of step $n$ is
   ``fold_in(PRNGKey(seed), n)``, so a run resumed from an (atomically written) checkpoint is
   bit-identical to an uninterrupted one. :func:`linear_denoiser_loss` is the exact loss of
   the best linear (Wiener) denoiser, the baseline a trained network must beat.
3. **Measurement.** :func:`compare_with_machines` calibrates the patch size $k$ per step
   along the network's own DDIM trajectory (L2 and cosine, Kamb & Ganguli's
   ``scales_calibration``, THEORY §7.2 item 6) and gives $r^2$ between network and machine
   denoisers, and side-by-side samples; :func:`score_criticality` measures the network's $t_c$ with
   the black-box detectors of :mod:`gltheory.criticality` (mode softening by JVP probes at
   $x=0$ and along trajectories, the $\xi$ peak; THEORY §4.6), to be compared with the patch
   theory for the calibrated window (:func:`gltheory.field.patch_critical_point`, THEORY
   §4.3) and with the ideal score of the data spectrum (:func:`data_critical_time`, §1.4).

Everything is **[DERIVED]** for this project; the networks are small and CPU-sized.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from . import _io
from ._checks import as_float_array, batch_time, check_time, check_values
from .data import LatticeImages
from .processes import AbstractProcess

__all__ = [
    "AbstractDenoiserNet",
    "ConvDenoiser",
    "UNet",
    "MLPDenoiser",
    "ScoreNetwork",
    "log_snr_features",
    "TrainConfig",
    "TrainState",
    "TrainResult",
    "init_train_state",
    "make_optimizer",
    "dsm_loss",
    "train",
    "save_checkpoint",
    "load_checkpoint",
    "denoising_loss",
    "linear_denoiser_loss",
    "linear_denoiser",
    "digits_images",
    "MachineComparison",
    "compare_with_machines",
    "NetworkCriticality",
    "score_criticality",
    "data_critical_time",
]

Padding = Literal["circular", "zero"]
Parametrisation = Literal["edm", "denoiser", "epsilon"]
Weighting = Literal["snr_plus_one", "uniform", "snr"]

LOG_SNR_CLIP = 30.0
"""The time embedding sees $\\lambda$ clipped to $[-30, 30]$ (keeps features finite as $t\\to0$)."""


# ----------------------------------------------------------------------------------------------
# time embedding and networks
# ----------------------------------------------------------------------------------------------


def log_snr_features(log_snr: ArrayLike, n_freq: int) -> Array:
    r"""Fixed features of the log-SNR $\lambda$: $[\lambda/10,\ \sin f_j\lambda,\ \cos f_j\lambda]$.

    Frequencies $f_j$ geometric from $1/32$ to $2$ ($j<$ ``n_freq``), so the features resolve
    $\lambda$ over the whole training range; $\lambda$ is clipped to
    $\pm$:data:`LOG_SNR_CLIP` first. **Returns:** shape ``(2 n_freq + 1,)``.
    """
    lam = jnp.clip(jnp.asarray(log_snr), -LOG_SNR_CLIP, LOG_SNR_CLIP)
    f = jnp.asarray(np.geomspace(1 / 32, 2.0, n_freq), dtype=lam.dtype)
    return jnp.concatenate([lam[None] / 10, jnp.sin(f * lam), jnp.cos(f * lam)])


def _check_lattice_ndim(lattice_ndim):
    if lattice_ndim not in (1, 2):
        raise ValueError(f"lattice_ndim must be 1 or 2, got {lattice_ndim!r}.")


def _check_pos_int(v, name, minimum=1):
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}.")


class AbstractDenoiserNet(eqx.Module):
    r"""A network $F_\theta(\tilde x,\lambda)$ of one scaled lattice image and the log-SNR.

    ``__call__(x, log_snr)`` takes ``x`` of shape ``lattice`` (no batch, no channel axis) and
    a scalar $\lambda$ and returns an array shaped like ``x`` (a denoiser or noise estimate,
    see :class:`ScoreNetwork`).
    """

    lattice_ndim: eqx.AbstractVar[int]

    def __call__(self, x: Array, log_snr: Array) -> Array:
        raise NotImplementedError


def _conv(D, cin, cout, k, padding, key, dtype):
    mode = "CIRCULAR" if padding == "circular" else "ZEROS"
    return eqx.nn.Conv(D, cin, cout, k, padding=k // 2, padding_mode=mode, dtype=dtype, key=key)


def _radii(window: int, depth: int) -> tuple[int, ...]:
    r = window // 2
    q, rem = divmod(r, depth)
    return tuple(q + (1 if i < rem else 0) for i in range(depth))


class ConvDenoiser(AbstractDenoiserNet):
    r"""Purely convolutional denoiser with receptive field exactly ``window`` (THEORY §7).

    ``depth`` convolutions whose radii $r_l$ add up to $r=$ ``window // 2`` (kernel
    $2r_l+1$, spread as evenly as possible), SiLU between them, and FiLM time conditioning:
    after hidden convolution $l$, $h\mapsto h\,(1+\gamma_l(\lambda))+\beta_l(\lambda)$ per
    channel, $(\gamma,\beta)$ from a small MLP of :func:`log_snr_features`. Output site $i$
    depends only on $x_{i+\Omega}$, $\Omega=\{-r..r\}^D$: with ``padding="circular"`` the map
    commutes with circular shifts (the ELS geometry), with ``"zero"`` the window is cropped
    at the border (zero padding, the bbELS/LS geometry).

    **Arguments:**

    - `lattice_ndim`: 1 or 2.
    - `window`: odd receptive field $k$.
    - `width`: hidden channels; `depth`: number of convolutions ($\ge1$).
    - `radii`: optional per-layer radii $r_l$ (``depth`` non-negative ints summing to
      ``window // 2``; e.g. ``(2, 0, 0)``: one $5\times5$ patch layer then pointwise layers,
      the structure of the ELS machine); default: spread evenly.
    - `padding`: ``"circular"`` or ``"zero"``.
    - `n_freq`: time-embedding frequencies; `film_width`: hidden size of the FiLM MLP.
    - `key`: PRNG key; `dtype`: parameter dtype (default equinox's default float).
    """

    convs: list
    film: eqx.nn.MLP
    lattice_ndim: int = eqx.field(static=True)
    window: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    padding: str = eqx.field(static=True)
    n_freq: int = eqx.field(static=True)

    def __init__(
        self,
        lattice_ndim: int = 2,
        *,
        window: int = 5,
        width: int = 16,
        depth: int = 3,
        padding: Padding = "circular",
        n_freq: int = 8,
        film_width: int = 32,
        radii: Sequence[int] | None = None,
        key: PRNGKeyArray,
        dtype=None,
    ):
        _check_lattice_ndim(lattice_ndim)
        _check_pos_int(window, "window")
        if window % 2 == 0:
            raise ValueError(f"window must be odd (k = 2r + 1), got {window}.")
        _check_pos_int(width, "width")
        _check_pos_int(depth, "depth")
        _check_pos_int(n_freq, "n_freq")
        if padding not in ("circular", "zero"):
            raise ValueError(f"padding must be 'circular' or 'zero', got {padding!r}.")
        self.lattice_ndim, self.window, self.width = lattice_ndim, window, width
        self.padding, self.n_freq = padding, n_freq
        keys = jax.random.split(key, depth + 1)
        chans = [1] + [width] * (depth - 1) + [1]
        if radii is None:
            radii = _radii(window, depth)
        radii = tuple(int(r) for r in radii)
        if len(radii) != depth or any(r < 0 for r in radii) or sum(radii) != window // 2:
            raise ValueError(
                f"radii must be {depth} non-negative ints summing to window // 2 = "
                f"{window // 2}, got {radii}."
            )
        self.convs = [
            _conv(lattice_ndim, chans[i], chans[i + 1], 2 * r + 1, padding, keys[i], dtype)
            for i, r in enumerate(radii)
        ]
        n_film = 2 * width * (depth - 1)
        self.film = eqx.nn.MLP(
            2 * n_freq + 1, max(n_film, 1), film_width, 1, jax.nn.silu, dtype=dtype, key=keys[-1]
        )

    def __call__(self, x, log_snr):
        dtype = self.convs[0].weight.dtype
        h = x.astype(dtype)[None]
        emb = self.film(log_snr_features(jnp.asarray(log_snr, dtype), self.n_freq))
        expand = (slice(None),) + (None,) * self.lattice_ndim
        for i, conv in enumerate(self.convs[:-1]):
            h = conv(h)
            g = emb[2 * i * self.width : (2 * i + 1) * self.width]
            b = emb[(2 * i + 1) * self.width : (2 * i + 2) * self.width]
            h = jax.nn.silu(h * (1 + g[expand]) + b[expand])
        return self.convs[-1](h)[0]


def _pool(h, D):
    c, *sp = h.shape
    new = [c]
    for s in sp:
        new += [s // 2, 2]
    h = h.reshape(new)
    return h.mean(axis=tuple(range(2, 2 + 2 * D, 2)))


def _upsample(h, D):
    for ax in range(1, 1 + D):
        h = jnp.repeat(h, 2, axis=ax)
    return h


class UNet(AbstractDenoiserNet):
    r"""A small UNet: ``len(widths)`` resolution levels, 3-tap convolutions, FiLM on $\lambda$.

    Encoder level $l$: two convolutions (``widths[l]`` channels, SiLU, FiLM after the first),
    then $2\times$ average pooling; decoder: nearest upsampling, concatenation with the skip,
    two convolutions. Lattice sizes must be divisible by $2^{\text{levels}-1}$. With circular
    padding it commutes with circular shifts by multiples of $2^{\text{levels}-1}$ (pooling
    breaks full equivariance); its receptive field is not a configured window.
    """

    enc: list
    dec: list
    out: eqx.nn.Conv
    film: eqx.nn.MLP
    lattice_ndim: int = eqx.field(static=True)
    widths: tuple[int, ...] = eqx.field(static=True)
    padding: str = eqx.field(static=True)
    n_freq: int = eqx.field(static=True)

    def __init__(
        self,
        lattice_ndim: int = 2,
        *,
        widths: Sequence[int] = (16, 32),
        padding: Padding = "circular",
        n_freq: int = 8,
        film_width: int = 32,
        key: PRNGKeyArray,
        dtype=None,
    ):
        _check_lattice_ndim(lattice_ndim)
        widths = tuple(int(w) for w in widths)
        if len(widths) < 1 or any(w < 1 for w in widths):
            raise ValueError(f"widths must be a non-empty sequence of positive ints, got {widths}.")
        if padding not in ("circular", "zero"):
            raise ValueError(f"padding must be 'circular' or 'zero', got {padding!r}.")
        _check_pos_int(n_freq, "n_freq")
        self.lattice_ndim, self.widths, self.padding, self.n_freq = (
            lattice_ndim,
            widths,
            padding,
            n_freq,
        )
        D = lattice_ndim
        keys = iter(jax.random.split(key, 4 * len(widths) + 2))
        enc, dec = [], []
        cin = 1
        for w in widths:
            enc.append(
                [_conv(D, cin, w, 3, padding, next(keys), dtype)]
                + [_conv(D, w, w, 3, padding, next(keys), dtype)]
            )
            cin = w
        for lvl in reversed(range(len(widths) - 1)):
            w = widths[lvl]
            dec.append(
                [_conv(D, widths[lvl + 1] + w, w, 3, padding, next(keys), dtype)]
                + [_conv(D, w, w, 3, padding, next(keys), dtype)]
            )
        self.enc, self.dec = enc, dec
        self.out = _conv(D, widths[0], 1, 1, padding, next(keys), dtype)
        n_film = 2 * sum(widths)
        self.film = eqx.nn.MLP(
            2 * n_freq + 1, n_film, film_width, 1, jax.nn.silu, dtype=dtype, key=next(keys)
        )

    def __call__(self, x, log_snr):
        D = self.lattice_ndim
        levels = len(self.widths)
        for s in x.shape:
            if s % (2 ** (levels - 1)):
                raise ValueError(
                    f"UNet with {levels} levels needs lattice sizes divisible by "
                    f"{2 ** (levels - 1)}, got {x.shape}."
                )
        dtype = self.out.weight.dtype
        emb = self.film(log_snr_features(jnp.asarray(log_snr, dtype), self.n_freq))
        expand = (slice(None),) + (None,) * D
        h = x.astype(dtype)[None]
        skips = []
        off = 0
        for lvl, (c1, c2) in enumerate(self.enc):
            w = self.widths[lvl]
            g, b = emb[off : off + w], emb[off + w : off + 2 * w]
            off += 2 * w
            h = jax.nn.silu(c1(h) * (1 + g[expand]) + b[expand])
            h = jax.nn.silu(c2(h))
            if lvl < levels - 1:
                skips.append(h)
                h = _pool(h, D)
        for c1, c2 in self.dec:
            h = jnp.concatenate([_upsample(h, D), skips.pop()], axis=0)
            h = jax.nn.silu(c1(h))
            h = jax.nn.silu(c2(h))
        return self.out(h)[0]


class MLPDenoiser(AbstractDenoiserNet):
    r"""Fully connected baseline: $F=\mathrm{MLP}([\tilde x,\ \text{features}(\lambda)])$.

    No locality, no equivariance: it can memorise the training set like the ideal score.
    """

    mlp: eqx.nn.MLP
    lattice_shape: tuple[int, ...] = eqx.field(static=True)
    lattice_ndim: int = eqx.field(static=True)
    n_freq: int = eqx.field(static=True)

    def __init__(
        self,
        lattice_shape: Sequence[int],
        *,
        width: int = 128,
        depth: int = 3,
        n_freq: int = 8,
        key: PRNGKeyArray,
        dtype=None,
    ):
        shape = tuple(int(s) for s in np.atleast_1d(lattice_shape))
        _check_lattice_ndim(len(shape))
        _check_pos_int(width, "width")
        _check_pos_int(depth, "depth")
        _check_pos_int(n_freq, "n_freq")
        self.lattice_shape, self.lattice_ndim, self.n_freq = shape, len(shape), n_freq
        d = int(np.prod(shape))
        self.mlp = eqx.nn.MLP(
            d + 2 * n_freq + 1, d, width, depth, jax.nn.silu, dtype=dtype, key=key
        )

    def __call__(self, x, log_snr):
        if tuple(x.shape) != self.lattice_shape:
            raise ValueError(
                f"MLPDenoiser built for {self.lattice_shape}, got x of shape {x.shape}."
            )
        dtype = self.mlp.layers[0].weight.dtype
        feats = log_snr_features(jnp.asarray(log_snr, dtype), self.n_freq)
        return self.mlp(jnp.concatenate([x.astype(dtype).reshape(-1), feats])).reshape(x.shape)


class ScoreNetwork(eqx.Module):
    r"""A denoiser network as a score function of a process (module docstring, THEORY §1.2).

    $D(x,t)$ from the network output (``"denoiser"``: $F$; ``"epsilon"``:
    $(x-b_tF)/a_t$; ``"edm"``: $c_{\rm skip}x+c_{\rm out}F$ with Karras et al.'s
    coefficients in $\sigma=b_t/a_t$ units) with input scaling
    $c_{\rm in}=(a_t^2\sigma_{\rm d}^2+b_t^2)^{-1/2}$. For ±1 lattice data ``"denoiser"`` trains
    best: at low noise the EDM residual target $(y-x/a)/\sigma$ of discrete data is a steep
    function of $x$ (measured: a small net stays at the linear denoiser's loss);
    $s=(a_tD-x)/b_t^2$, $\hat\epsilon=(x-a_tD)/b_t$. Calls accept ``x`` of shape
    ``(*batch, *lattice)`` and ``t`` scalar or shaped like ``batch``; the output has ``x``'s
    dtype. A pytree: jit/vmap/grad and :func:`gltheory.sample` work on it directly.

    **Arguments:**

    - `net`: an :class:`AbstractDenoiserNet`.
    - `process`: the forward process ($a_t$, $b_t$).
    - `parametrisation`: ``"denoiser"``, ``"epsilon"`` or ``"edm"``.
    - `sigma_data`: data scale $\sigma_{\rm d}$ in $c_{\rm in}$ (1 for ±1 lattice data).
    """

    net: AbstractDenoiserNet
    process: AbstractProcess
    sigma_data: Array
    parametrisation: str = eqx.field(static=True)

    def __init__(
        self,
        net: AbstractDenoiserNet,
        process: AbstractProcess,
        *,
        parametrisation: Parametrisation = "denoiser",
        sigma_data: ArrayLike = 1.0,
    ):
        if not isinstance(net, AbstractDenoiserNet):
            raise ValueError(f"net must be a gltheory denoiser network, got {type(net).__name__}.")
        if not isinstance(process, AbstractProcess):
            raise ValueError(f"process must be a gltheory process, got {type(process).__name__}.")
        if parametrisation not in ("edm", "denoiser", "epsilon"):
            raise ValueError(
                f"parametrisation must be 'edm', 'denoiser' or 'epsilon', got {parametrisation!r}."
            )
        sd = as_float_array(sigma_data, "sigma_data")
        if sd.ndim != 0:
            raise ValueError(f"sigma_data must be a scalar, got shape {sd.shape}.")
        sd = check_values(sd, lambda v: ~(v > 0), f"sigma_data must be > 0, got {sigma_data!r}.")
        self.net, self.process, self.parametrisation, self.sigma_data = (
            net,
            process,
            parametrisation,
            sd,
        )

    def _prep(self, x, t):
        x = as_float_array(x, "x")
        D = self.net.lattice_ndim
        if x.ndim < D:
            raise ValueError(
                f"x must have shape (*batch, *lattice) with a {D}-D lattice, got {x.shape}."
            )
        t = check_time(t, self.process.T, "t")
        batch_time(t, x, D)  # shape check only
        batch = x.shape[: x.ndim - D]
        tb = jnp.broadcast_to(t, batch)
        return x, tb.astype(x.dtype), batch

    def _denoise(self, x, t):
        """``x`` (*batch, *lattice), ``t`` broadcast to batch; returns (D, a, b2) per batch."""
        D = self.net.lattice_ndim
        lattice = x.shape[x.ndim - D :]
        batch = x.shape[: x.ndim - D]
        xf = x.reshape((-1,) + lattice)
        tf = t.reshape(-1)
        p = self.process
        log_snr = p.log_snr(tf).astype(x.dtype)
        a = p.a(tf).astype(x.dtype)
        b2 = p.b2(tf).astype(x.dtype)
        sd2 = self.sigma_data.astype(x.dtype) ** 2
        c_in = jax.lax.rsqrt(a**2 * sd2 + b2)
        ex = (slice(None),) + (None,) * D
        out = jax.vmap(self.net)(c_in[ex] * xf, log_snr).astype(x.dtype)
        if self.parametrisation == "edm":
            sd = jnp.sqrt(sd2)
            den = (sd2 * a * c_in**2)[ex] * xf + (sd * jnp.sqrt(b2) * c_in)[ex] * out
        elif self.parametrisation == "denoiser":
            den = out
        else:
            den = (xf - jnp.sqrt(b2)[ex] * out) / a[ex]
        return den.reshape(batch + lattice), a.reshape(batch), b2.reshape(batch)

    def _field(self, x, t, field: str):
        den, a, b2 = self._denoise(x, t)
        if field == "denoise":
            return den
        ex = (...,) + (None,) * self.net.lattice_ndim
        if field == "score":
            return (a[ex] * den - x) / b2[ex]
        return (x - a[ex] * den) / jnp.sqrt(b2)[ex]

    def denoise(self, x: ArrayLike, t: ArrayLike) -> Array:
        """Denoiser $D(x,t)\\approx\\mathbb E[y\\mid x_t=x]$, shaped like ``x``."""
        x, t, _ = self._prep(x, t)
        return _field_jit(self, x, t, "denoise")

    def score(self, x: ArrayLike, t: ArrayLike) -> Array:
        r"""Score $s=(a_tD-x)/b_t^2$, shaped like ``x``."""
        x, t, _ = self._prep(x, t)
        return _field_jit(self, x, t, "score")

    def epsilon(self, x: ArrayLike, t: ArrayLike) -> Array:
        r"""Noise estimate $\hat\epsilon=(x-a_tD)/b_t=-b_ts$, shaped like ``x``."""
        x, t, _ = self._prep(x, t)
        return _field_jit(self, x, t, "epsilon")

    def __call__(self, x: ArrayLike, t: ArrayLike) -> Array:
        """Alias of :meth:`score`, so the module is a ``score_fn(x, t)``."""
        return self.score(x, t)


@eqx.filter_jit
def _field_jit(model: ScoreNetwork, x, t, field: str):
    return model._field(x, t, field)


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Denoising-score-matching settings (plain, hashable values; CPU-sized defaults).

    - `n_steps`, `batch_size`: optimiser steps and images per step.
    - `learning_rate`, `warmup_steps`, `end_lr_factor`: linear warm-up to the peak rate then
      cosine decay to ``end_lr_factor * learning_rate`` (optax).
    - `weight_decay`: AdamW decoupled weight decay; `clip_norm`: global-norm gradient clip.
    - `ema_decay`: EMA of the weights, $\\bar\\theta\\leftarrow d\\bar\\theta+(1-d)\\theta$ with
      $d=\\min(\\text{ema\\_decay},(1+n)/(10+n))$ at step $n$.
    - `log_snr_min`, `log_snr_max`: range of the uniform log-SNR distribution of training times.
    - `weighting`: $w(\\lambda)$ = ``"snr_plus_one"`` ($1+{\\rm SNR}$), ``"uniform"`` (1) or
      ``"snr"`` (SNR: the $\\epsilon$-prediction MSE).
    - `parametrisation`: network output, ``"denoiser"``, ``"epsilon"`` or ``"edm"``.
    - `sigma_data`: $\\sigma_{\\rm d}$ of the input scaling.
    - `chunk`: steps per jitted ``lax.scan`` call (checkpoints land on chunk boundaries).
    - `seed`: step $n$ uses ``fold_in(PRNGKey(seed), n)``.
    """

    n_steps: int = 1000
    batch_size: int = 64
    learning_rate: float = 3e-3
    warmup_steps: int = 50
    end_lr_factor: float = 0.05
    weight_decay: float = 1e-4
    clip_norm: float = 1.0
    ema_decay: float = 0.995
    log_snr_min: float = -6.0
    log_snr_max: float = 8.0
    weighting: Weighting = "snr_plus_one"
    parametrisation: Parametrisation = "denoiser"
    sigma_data: float = 1.0
    chunk: int = 50
    seed: int = 0

    def __post_init__(self):
        for name in ("n_steps", "batch_size", "chunk"):
            _check_pos_int(getattr(self, name), name)
        _check_pos_int(self.warmup_steps, "warmup_steps", 0)
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}.")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}.")
        if not self.log_snr_min < self.log_snr_max:
            raise ValueError(
                f"need log_snr_min < log_snr_max, got {self.log_snr_min}, {self.log_snr_max}."
            )
        if self.weighting not in ("snr_plus_one", "uniform", "snr"):
            raise ValueError(
                f"weighting must be 'snr_plus_one', 'uniform' or 'snr', got {self.weighting!r}."
            )
        if self.parametrisation not in ("edm", "denoiser", "epsilon"):
            raise ValueError(
                f"parametrisation must be 'edm', 'denoiser' or 'epsilon', got {self.parametrisation!r}."
            )


class TrainState(eqx.Module):
    """Everything a run needs to continue: weights, EMA weights, optimiser state, step, losses."""

    net: AbstractDenoiserNet
    ema: AbstractDenoiserNet
    opt_state: Any
    step: Array
    losses: Array


class TrainResult(NamedTuple):
    """``state`` (final :class:`TrainState`), ``model`` and ``ema_model`` (:class:`ScoreNetwork`)."""

    state: TrainState
    model: ScoreNetwork
    ema_model: ScoreNetwork


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Global-norm clipping then AdamW with a warm-up + cosine-decay learning-rate schedule."""
    sched = optax.warmup_cosine_decay_schedule(
        0.0,
        config.learning_rate,
        max(config.warmup_steps, 1),
        max(config.n_steps, config.warmup_steps + 1),
        end_value=config.learning_rate * config.end_lr_factor,
    )
    return optax.chain(
        optax.clip_by_global_norm(config.clip_norm),
        optax.adamw(sched, weight_decay=config.weight_decay),
    )


def init_train_state(net: AbstractDenoiserNet, config: TrainConfig) -> TrainState:
    """A fresh :class:`TrainState` (also the template for :func:`load_checkpoint`)."""
    params = eqx.filter(net, eqx.is_inexact_array)
    dtype = jax.tree_util.tree_leaves(params)[0].dtype
    return TrainState(
        net=net,
        ema=net,
        opt_state=make_optimizer(config).init(params),
        step=jnp.zeros((), jnp.int32),
        losses=jnp.full((config.n_steps,), jnp.nan, dtype),
    )


def _weight(process, t, weighting):
    snr = process.snr(t)
    if weighting == "snr_plus_one":
        return 1 + snr
    if weighting == "snr":
        return snr
    return jnp.ones_like(snr)


def dsm_loss(
    model: ScoreNetwork,
    y: Array,
    t: Array,
    z: Array,
    *,
    weighting: Weighting = "snr_plus_one",
) -> Array:
    r"""Denoising score-matching loss $\frac1B\sum_n w(t_n)\frac1d\|D(a_ny_n+b_nz_n,t_n)-y_n\|^2$.

    ``y``, ``z``: shape ``(B, *lattice)``; ``t``: shape ``(B,)``. Minimising it over all
    functions gives the exact denoiser $\mathbb E[y\mid x_t]$ (THEORY §1.2), hence the score.
    """
    p = model.process
    D = model.net.lattice_ndim
    ex = (...,) + (None,) * D
    x = p.a(t)[ex] * y + p.b(t)[ex] * z
    den = model.denoise(x, t)
    err = jnp.mean(((den - y) ** 2).reshape(y.shape[0], -1), axis=1)
    return jnp.mean(_weight(p, t, weighting) * err)


def _batch(key, images, weights, process, config: TrainConfig, dtype):
    k_i, k_t, k_z = jax.random.split(key, 3)
    n = images.shape[0]
    idx = jax.random.choice(k_i, n, (config.batch_size,), p=weights)
    lam = jax.random.uniform(
        k_t, (config.batch_size,), dtype, config.log_snr_min, config.log_snr_max
    )
    t = process.t_of_snr(jnp.exp(lam)).astype(dtype)
    z = jax.random.normal(k_z, (config.batch_size,) + images.shape[1:], dtype)
    return images[idx].astype(dtype), t, z


@eqx.filter_jit
def _train_chunk(state: TrainState, images, weights, process, config: TrainConfig, start):
    opt = make_optimizer(config)
    root = jax.random.PRNGKey(config.seed)
    dyn, static = eqx.partition(state, eqx.is_array)
    dtype = state.losses.dtype

    def loss_fn(net, y, t, z):
        model = ScoreNetwork(
            net, process, parametrisation=config.parametrisation, sigma_data=config.sigma_data
        )
        return dsm_loss(model, y, t, z, weighting=config.weighting)

    def body(dyn, i):
        st = eqx.combine(dyn, static)
        step = start + i
        y, t, z = _batch(jax.random.fold_in(root, step), images, weights, process, config, dtype)
        loss, grads = eqx.filter_value_and_grad(loss_fn)(st.net, y, t, z)
        params = eqx.filter(st.net, eqx.is_inexact_array)
        updates, opt_state = opt.update(grads, st.opt_state, params)
        net = eqx.apply_updates(st.net, updates)
        sf = step.astype(dtype)
        d = jnp.minimum(config.ema_decay, (1 + sf) / (10 + sf)).astype(dtype)
        ema = jax.tree_util.tree_map(
            lambda e, p: d * e + (1 - d) * p,
            eqx.filter(st.ema, eqx.is_inexact_array),
            eqx.filter(net, eqx.is_inexact_array),
        )
        ema = eqx.combine(ema, st.ema)
        new = TrainState(net, ema, opt_state, st.step + 1, st.losses.at[step].set(loss))
        new_dyn = eqx.filter(new, eqx.is_array)
        active = step < config.n_steps
        dyn = jax.tree_util.tree_map(lambda a, b: jnp.where(active, a, b), new_dyn, dyn)
        return dyn, None

    dyn, _ = jax.lax.scan(body, dyn, jnp.arange(config.chunk, dtype=jnp.int32))
    return eqx.combine(dyn, static)


def save_checkpoint(path: str | os.PathLike, state: TrainState) -> Path:
    """Write ``state`` atomically with ``eqx.tree_serialise_leaves`` (temp file + ``os.replace``)."""
    return _io.atomic_write(path, lambda f: eqx.tree_serialise_leaves(f, state))


def load_checkpoint(path: str | os.PathLike, like: TrainState) -> TrainState:
    """Read a checkpoint into the structure of ``like`` (e.g. :func:`init_train_state`'s output)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no checkpoint at {path}.")
    return eqx.tree_deserialise_leaves(path, like)


def _images_weights(images) -> tuple[Array, Array]:
    if isinstance(images, LatticeImages):
        y, w = images.images, images.weights
    else:
        y = as_float_array(images, "images")
        w = jnp.full((y.shape[0],), 1.0 / y.shape[0], y.dtype)
    if y.ndim not in (2, 3):
        raise ValueError(
            f"images must have shape (N, L) or (N, H, W) (one channel, no channel axis), got {y.shape}."
        )
    return y, w


def train(
    net: AbstractDenoiserNet,
    images: LatticeImages | ArrayLike,
    process: AbstractProcess,
    config: TrainConfig = TrainConfig(),
    *,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    stop_after: int | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    r"""Train ``net`` by denoising score matching on ``images`` (module docstring).

    Steps run in jitted ``lax.scan`` chunks of ``config.chunk``; step $n$'s batch (image
    indices, log-SNR, noise) comes from ``fold_in(PRNGKey(config.seed), n)``, so the result
    depends only on (config, initial net, data), not on how the run was cut into calls.

    **Arguments:**

    - `net`: the initial network; `images`: :class:`LatticeImages` or ``(N, *lattice)``.
    - `process`: forward process (its $a_t,b_t$ define the noising).
    - `config`: a :class:`TrainConfig`.
    - `checkpoint`: file for atomic checkpoints (written every ``checkpoint_every`` steps and
      at the end). With ``resume=True`` an existing file is loaded and training continues
      from its step (bit-identical to an uninterrupted run).
    - `checkpoint_every`: a multiple of ``config.chunk`` (default: only at the end).
    - `stop_after`: stop once this many steps are done (a multiple of ``config.chunk``),
      e.g. to simulate an interruption.
    - `log`: optional callable receiving one progress line per chunk.

    **Returns:** a :class:`TrainResult`.
    """
    if not isinstance(net, AbstractDenoiserNet):
        raise ValueError(f"net must be a gltheory denoiser network, got {type(net).__name__}.")
    if not isinstance(process, AbstractProcess):
        raise ValueError(f"process must be a gltheory process, got {type(process).__name__}.")
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}.")
    y, w = _images_weights(images)
    if y.ndim - 1 != net.lattice_ndim:
        raise ValueError(
            f"images are {y.ndim - 1}-D lattices but the network has lattice_ndim={net.lattice_ndim}."
        )
    lo = float(process.log_snr(process.T))
    if config.log_snr_min < lo - 1e-9:
        raise ValueError(
            f"config.log_snr_min={config.log_snr_min} is below the process's log-SNR at T "
            f"({lo:.4g}); raise it or use a larger T."
        )
    for name, v in (("checkpoint_every", checkpoint_every), ("stop_after", stop_after)):
        if v is not None:
            _check_pos_int(v, name)
            if v % config.chunk:
                raise ValueError(f"{name}={v} must be a multiple of config.chunk={config.chunk}.")
    state = init_train_state(net, config)
    dtype = state.losses.dtype
    y, w = y.astype(dtype), w.astype(dtype)
    if checkpoint is not None and resume and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint, state)
    end = config.n_steps if stop_after is None else min(stop_after, config.n_steps)
    done = int(state.step)
    while done < end:
        state = _train_chunk(state, y, w, process, config, jnp.asarray(done, jnp.int32))
        done = int(state.step)
        if log is not None:
            recent = np.asarray(state.losses[max(done - config.chunk, 0) : done])
            log(f"step {done}/{config.n_steps}: loss {np.nanmean(recent):.5g}")
        if checkpoint is not None and (
            (checkpoint_every is not None and done % checkpoint_every == 0) or done >= end
        ):
            save_checkpoint(checkpoint, state)

    def wrap(n):
        return ScoreNetwork(
            n, process, parametrisation=config.parametrisation, sigma_data=config.sigma_data
        )

    return TrainResult(state, wrap(state.net), wrap(state.ema))


# ----------------------------------------------------------------------------------------------
# evaluation losses: network vs the exact linear (Wiener) denoiser
# ----------------------------------------------------------------------------------------------


def _gauss_legendre(lo, hi, n):
    u, wq = np.polynomial.legendre.leggauss(n)
    return 0.5 * (hi - lo) * u + 0.5 * (hi + lo), 0.5 * wq


def denoising_loss(
    model: ScoreNetwork | Callable[[Array, Array], Array],
    images: LatticeImages | ArrayLike,
    process: AbstractProcess,
    key: PRNGKeyArray,
    *,
    log_snr_range: tuple[float, float] = (-6.0, 8.0),
    n_nodes: int = 16,
    n_noise: int = 8,
    weighting: Weighting = "snr_plus_one",
) -> tuple[Array, Array]:
    r"""Monte Carlo estimate of the training objective with fixed quadrature in $\lambda$.

    $\bar{\mathcal L}=\frac1{\Delta\lambda}\int d\lambda\,w(\lambda)\,\mathbb E_{y,z}\frac1d\|D(a y+bz)-y\|^2$
    with Gauss–Legendre nodes in $\lambda$ (exact average over the training images with
    their weights; ``n_noise`` noise draws per image and node from ``key``). ``model`` is a
    :class:`ScoreNetwork` or any denoiser callable ``D(x, t)`` on batches.

    **Returns:** ``(loss, se)``: the estimate and its standard error over the independent
    noise draws (per image and node, combined with the weights).
    """
    y, w = _images_weights(images)
    den_fn = model.denoise if isinstance(model, ScoreNetwork) else model
    lam, wq = _gauss_legendre(*log_snr_range, n_nodes)
    z = jax.random.normal(key, (n_nodes, n_noise) + y.shape, y.dtype)
    return _loss_core(den_fn, process, y, w, jnp.asarray(lam), jnp.asarray(wq), z, weighting)


@eqx.filter_jit
def _loss_core(den_fn, process, y, w, lam, wq, z, weighting):
    n_nodes, n_noise, N = z.shape[:3]
    lam, wq = lam.astype(y.dtype), wq.astype(y.dtype)
    t = process.t_of_snr(jnp.exp(lam)).astype(y.dtype)
    D = y.ndim - 1
    ex = (...,) + (None,) * D
    a = process.a(t)[:, None, None]
    b = process.b(t)[:, None, None]
    x = a[ex] * y[None, None] + b[ex] * z
    tt = jnp.broadcast_to(t[:, None, None], (n_nodes, n_noise, N))
    den = den_fn(x.reshape((-1,) + y.shape[1:]), tt.reshape(-1)).reshape(x.shape)
    err = jnp.mean(((den - y[None, None]) ** 2).reshape(n_nodes, n_noise, N, -1), axis=-1)
    err = err * _weight(process, t, weighting)[:, None, None]
    coef = wq[:, None, None] * w[None, None, :] / n_noise
    loss = jnp.sum(coef * err)
    # variance: per (node, image) cell the sample variance over the n_noise draws
    var_cell = jnp.var(err, axis=1, ddof=1) if n_noise > 1 else jnp.zeros_like(err[:, 0])
    se = jnp.sqrt(jnp.sum((wq[:, None] * w[None]) ** 2 * var_cell / n_noise))
    return loss, se


def linear_denoiser_loss(
    images: LatticeImages | ArrayLike,
    process: AbstractProcess,
    *,
    log_snr_range: tuple[float, float] = (-6.0, 8.0),
    n_nodes: int = 16,
    weighting: Weighting = "snr_plus_one",
) -> Array:
    r"""Exact objective of the best linear (Wiener/Gaussian) denoiser, same quadrature as :func:`denoising_loss`.

    With data mean $m$ and covariance $C$ (eigenvalues $c_j$), the best affine denoiser is
    $D(x)=m+a\,C(a^2C+b^2I)^{-1}(x-am)$ and its mean-squared error per site is
    $$\frac1d\,\mathrm{tr}\big[b^2C(a^2C+b^2I)^{-1}\big]=\frac1d\sum_j\frac{b^2c_j}{a^2c_j+b^2},$$
    exactly, for any data law with that mean and covariance (the data being the
    training-image distribution here).
    """
    y, w = _images_weights(images)
    yf = y.reshape(y.shape[0], -1)
    m = w @ yf
    C = (yf - m).T @ (w[:, None] * (yf - m))
    c = jnp.clip(jnp.linalg.eigvalsh(C), 0.0, None)
    lam, wq = _gauss_legendre(*log_snr_range, n_nodes)
    lam = jnp.asarray(lam, y.dtype)
    t = process.t_of_snr(jnp.exp(lam)).astype(y.dtype)
    a2, b2 = process.a(t) ** 2, process.b2(t)
    mse = jnp.mean(b2[:, None] * c[None] / (a2[:, None] * c[None] + b2[:, None]), axis=1)
    return jnp.sum(jnp.asarray(wq, y.dtype) * _weight(process, t, weighting) * mse)


class _LinearDenoiser(eqx.Module):
    mean: Array
    evals: Array
    evecs: Array
    process: AbstractProcess

    @eqx.filter_jit
    def __call__(self, x, t):
        d = self.mean.shape[0]
        shape = x.shape
        xf = x.reshape(-1, d)
        t = jnp.broadcast_to(jnp.asarray(t, x.dtype), xf.shape[:1])
        a, b2 = self.process.a(t)[:, None], self.process.b2(t)[:, None]
        gain = a * self.evals / (a**2 * self.evals + b2)  # eigenvalues of a C (a^2 C + b^2)^-1
        proj = ((xf - a * self.mean) @ self.evecs) * gain
        return (self.mean + proj @ self.evecs.T).reshape(shape)


def linear_denoiser(images: LatticeImages | ArrayLike, process: AbstractProcess):
    r"""The best linear denoiser $D(x,t)=m+a_tC(a_t^2C+b_t^2I)^{-1}(x-a_tm)$ (batched ``x``, ``t``).

    The Wiener filter of :func:`linear_denoiser_loss`, applied in the eigenbasis of $C$.
    """
    y, w = _images_weights(images)
    yf = y.reshape(y.shape[0], -1)
    m = w @ yf
    C = (yf - m).T @ (w[:, None] * (yf - m))
    evals, evecs = jnp.linalg.eigh(C)
    return _LinearDenoiser(m, jnp.clip(evals, 0.0, None), evecs, process)


def digits_images(*, n: int | None = None, binarize: bool = False) -> LatticeImages:
    """scikit-learn's bundled 8x8 digits (1797 images) as ``LatticeImages`` in $[-1, 1]$.

    Needs the optional extra ``digits`` (``pip install gltheory[digits]``, i.e.
    scikit-learn); nothing is downloaded (the data ship with the package). Pixel values
    0..16 are mapped to $2v/16-1$; ``binarize`` maps them to $\\pm1$ at the midpoint; ``n``
    keeps the first ``n`` images.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "digits_images needs scikit-learn (the optional extra 'digits': "
            "pip install 'gltheory[digits]' or pip install scikit-learn)."
        ) from err
    imgs = load_digits().images.astype(np.float64) / 16.0 * 2 - 1
    if binarize:
        imgs = np.where(imgs > 0, 1.0, -1.0)
    if n is not None:
        _check_pos_int(n, "n")
        imgs = imgs[:n]
    return LatticeImages(jnp.asarray(imgs))


# ----------------------------------------------------------------------------------------------
# comparison with the patch machines (Kamb & Ganguli calibration, THEORY §7.2)
# ----------------------------------------------------------------------------------------------


class MachineComparison(NamedTuple):
    r"""Network vs patch machines along the network's own trajectories (:func:`compare_with_machines`).

    Shapes: ``n_t`` evaluation times (the DDIM steps), ``n`` trajectories, ``n_k`` windows.

    - `ts`: evaluation times ``(n_t,)`` (generation order); `windows`: ``(n_k,)``.
    - `l2`: relative score distance $\|s_{\rm net}-s_k\|/\|s_{\rm net}\|$, median over
      trajectories, ``(n_t, n_k)``; `cosine`: score cosine similarity, median, ``(n_t, n_k)``.
    - `best_k_l2`, `best_k_cos`: per time, the median over trajectories of each
      trajectory's best window (smallest L2 / largest cosine), ``(n_t,)`` (Kamb & Ganguli).
    - `r2`: $r^2=1-\sum(D_{\rm net}-D_k)^2/\sum(D_{\rm net}-\bar D_{\rm net})^2$ of the
      denoisers pooled over trajectories and sites, ``(n_t, n_k)``.
    - `r2_calibrated`: $r^2$ with the window nearest to ``best_k_l2`` at each time, ``(n_t,)``.
    - `x_T`: the common start ``(n, *lattice)``; `net_samples`, `machine_samples`: the final
      DDIM samples of the network and of the calibrated machine (per-step window) from
      ``x_T``; `sample_r2`: $r^2$ between them (pooled).
    """

    ts: Array
    windows: Array
    l2: Array
    cosine: Array
    best_k_l2: Array
    best_k_cos: Array
    r2: Array
    r2_calibrated: Array
    x_T: Array
    net_samples: Array
    machine_samples: Array
    sample_r2: Array


def _r2(ref: Array, pred: Array, axes) -> Array:
    ss_res = jnp.sum((ref - pred) ** 2, axis=axes)
    ss_tot = jnp.sum((ref - jnp.mean(ref, axis=axes, keepdims=True)) ** 2, axis=axes)
    return 1 - ss_res / jnp.where(ss_tot > 0, ss_tot, jnp.nan)


def _ddim(process, x, den, t, t_next):
    """One DDIM step (THEORY §7.2 item 5; the update of ``gltheory.sample(method="ddim")``)."""
    a, b = process.a(t), process.b(t)
    a1, b1 = process.a(t_next), process.b(t_next)
    eps = (x - a * den) / b
    return ((a1 / a) * x + (b1 - (a1 / a) * b) * eps).astype(x.dtype)


@eqx.filter_jit
def _compare_step(model, banks, warr, x, xm, t, t_next):
    """One step of :func:`compare_with_machines`: metrics at the network's state ``x``,
    then DDIM updates of the network (``x``) and of the calibrated machine (``xm``, window =
    this step's median best window)."""
    from .patch import patch_posterior_stats

    process = model.process
    n = x.shape[0]
    dtype = x.dtype

    def score_of(z, den):
        return ((process.a(t) * den - z) / process.b2(t)).reshape(n, -1)

    d_net = model._field(x, jnp.broadcast_to(t, (n,)), "denoise")
    s_net = score_of(x, d_net)
    nrm = jnp.linalg.norm(s_net, axis=-1)
    d_ks = [patch_posterior_stats(x, t, bk, process).mean.astype(dtype) for bk in banks]
    s_ks = [score_of(x, d) for d in d_ks]
    l2 = jnp.stack([jnp.linalg.norm(s_net - sk, axis=-1) / nrm for sk in s_ks], -1)
    cos = jnp.stack(
        [jnp.sum(s_net * sk, -1) / (nrm * jnp.linalg.norm(sk, axis=-1)) for sk in s_ks], -1
    )
    r2 = jnp.stack([_r2(d_net.reshape(n, -1), d.reshape(n, -1), axes=(0, 1)) for d in d_ks])
    best_l2 = jnp.median(warr[jnp.argmin(l2, -1)])
    best_cos = jnp.median(warr[jnp.argmax(cos, -1)])
    k_idx = jnp.argmin(jnp.abs(best_l2 - warr))
    dm = jnp.stack([patch_posterior_stats(xm, t, bk, process).mean.astype(dtype) for bk in banks])
    x_next = _ddim(process, x, d_net, t, t_next)
    xm_next = _ddim(process, xm, dm[k_idx], t, t_next)
    out = (jnp.median(l2, axis=0), jnp.median(cos, axis=0), r2, best_l2, best_cos)
    return x_next, xm_next, out


def compare_with_machines(
    model: ScoreNetwork,
    images: LatticeImages | ArrayLike,
    key: PRNGKeyArray,
    *,
    windows: Sequence[int] = (1, 3, 5, 7),
    n: int = 8,
    ts: ArrayLike | None = None,
    n_steps: int = 20,
    equivariant: bool = True,
    boundary: Literal["periodic", "zero"] = "periodic",
) -> MachineComparison:
    r"""Calibrate the patch size per step along the network's DDIM trajectories (THEORY §7.2 item 6).

    From $x_T\sim\mathcal N(0,b_{t_0}^2I)$ (``key``) the network's deterministic DDIM
    trajectory is run (a Python loop over the steps: one compiled network call and one
    compiled machine per window, reused at every step); at every step's $(x_i,t_i)$ the network score is compared with the
    patch machines (ELS by default; ``equivariant=False`` gives LS) of every window $k$ in
    ``windows``: relative L2 distance and cosine similarity of the scores, per trajectory;
    the best $k$ per trajectory and its median over trajectories (Kamb & Ganguli take the
    median over about 10 samples); $r^2$ between the denoisers $D_{\rm net}$ and $D_k$.
    Finally the calibrated machine (the ELS machine with the per-step median best $k$) is run from the same $x_T$ with the same DDIM grid, for samples side by
    side and their $r^2$.

    **Arguments:**

    - `model`: a :class:`ScoreNetwork`; `images`: its training set.
    - `key`: PRNG key of the start noise.
    - `windows`: odd patch sizes to compare.
    - `n`: trajectories; `ts`: decreasing time grid (default: ``n_steps`` log-SNR steps over
      $\lambda\in[-6, 8]$ of the model's process, clipped to $(0,T]$).
    - `equivariant`, `boundary`: the machine family (see :func:`gltheory.patch_score`).

    **Returns:** a :class:`MachineComparison`.
    """
    from .patch import patch_bank

    if not isinstance(model, ScoreNetwork):
        raise ValueError(f"model must be a ScoreNetwork, got {type(model).__name__}.")
    y, _ = _images_weights(images)
    ws = [int(k) for k in windows]
    if not ws or any(k < 1 or k % 2 == 0 for k in ws):
        raise ValueError(f"windows must be a non-empty list of odd positive ints, got {windows!r}.")
    _check_pos_int(n, "n")
    process = model.process
    dtype = y.dtype
    if ts is None:
        ts = _default_grid(process, n_steps, dtype)
    ts = as_float_array(ts, "ts").astype(dtype)
    lattice = y.shape[1:]
    banks = [patch_bank(y, window=k, equivariant=equivariant, boundary=boundary) for k in ws]
    warr = jnp.asarray(ws, dtype)
    x_T = process.b(ts[0]).astype(dtype) * jax.random.normal(key, (n,) + lattice, dtype)

    x, xm = x_T, x_T
    l2, cos, r2, best_l2, best_cos = [], [], [], [], []
    for i in range(ts.shape[0] - 1):
        x, xm, out = _compare_step(model, tuple(banks), warr, x, xm, ts[i], ts[i + 1])
        for lst, v in zip((l2, cos, r2, best_l2, best_cos), out):
            lst.append(v)
    r2 = jnp.stack(r2)
    best_l2 = jnp.stack(best_l2)
    k_idx = jnp.argmin(jnp.abs(best_l2[:, None] - warr[None]), axis=1)
    r2_cal = jnp.take_along_axis(r2, k_idx[:, None], axis=1)[:, 0]
    net_final = x
    sample_r2 = _r2(net_final.reshape(n, -1), xm.reshape(n, -1), axes=(0, 1))
    return MachineComparison(
        ts=ts[:-1],
        windows=warr,
        l2=jnp.stack(l2),
        cosine=jnp.stack(cos),
        best_k_l2=best_l2,
        best_k_cos=jnp.stack(best_cos),
        r2=r2,
        r2_calibrated=r2_cal,
        x_T=x_T,
        net_samples=net_final,
        machine_samples=xm,
        sample_r2=sample_r2,
    )


def _default_grid(process: AbstractProcess, n_steps: int, dtype, lo=-6.0, hi=8.0) -> Array:
    from .sampling import time_grid

    t_max = min(float(process.t_of_snr(math.exp(lo))), float(process.T))
    t_min = float(process.t_of_snr(math.exp(hi)))
    return time_grid(process, n_steps, kind="log_snr", t_min=t_min, t_max=t_max).astype(dtype)


# ----------------------------------------------------------------------------------------------
# criticality of a trained network (THEORY §4.6) vs the patch theory (§4.3) and the data (§1.4)
# ----------------------------------------------------------------------------------------------


class NetworkCriticality(NamedTuple):
    r"""Critical times of a score (network or exact) and the theory values they are compared with.

    - `origin`: mode softening of the plane wave $q^\star$ at the symmetric point $x=0$
      (:func:`gltheory.criticality.softening_time` with zero states; the linear criterion of
      THEORY §4.3, exact for the patch model up to interpolation).
    - `trajectory`: the same stiffness averaged along reverse trajectories, read at its
      maximum (``mode="peak"``, the softest moment; along trajectories the patch model's
      curve need not cross zero, see :mod:`gltheory.criticality`).
    - `xi_peak`: peak of the correlation length of the denoised-field increments
      (:func:`gltheory.criticality.xi_peak_time`).
    - `patch_theory`: :func:`gltheory.field.patch_critical_point` for ``window`` (its
      ``t_score``/``t_sde``/``t_ode``, $q^\star$ and $\max_q\hat C_k$).
    - `data_theory`: the ideal-score time of the same criterion from the top eigenvalue
      $\Lambda$ of the data covariance (:func:`data_critical_time`).
    - `window`, `q_star`, `criterion`.
    """

    origin: Any
    trajectory: Any
    xi_peak: Any
    patch_theory: Any
    data_theory: float | None
    window: int
    q_star: Array
    criterion: str


def data_critical_time(
    images: LatticeImages | ArrayLike,
    process: AbstractProcess,
    *,
    criterion: Literal["score", "sde", "ode"] = "score",
) -> float | None:
    r"""Critical time of the ideal (memorising) score at $x=0$ from the data spectrum (THEORY §1.4).

    $\Lambda$ = top eigenvalue of the (weighted) data covariance; for centred equal-norm data
    the posterior covariance at $x=0$ is the data covariance, so criterion $v$ fires where
    ${\rm SNR}\,\Lambda-1+o_v b_t^2=0$ (the patch formula with $\hat C_k\to\Lambda$, THEORY §9).
    Solved by :func:`gltheory.field.patch_critical_point`'s bisection. ``None`` if no root.
    """
    from .field import _criterion_time

    y, w = _images_weights(images)
    yf = y.reshape(y.shape[0], -1)
    m = w @ yf
    C = (yf - m).T @ (w[:, None] * (yf - m))
    lam = float(jnp.linalg.eigvalsh(C)[-1])
    if criterion not in ("score", "sde", "ode"):
        raise ValueError(f"criterion must be 'score', 'sde' or 'ode', got {criterion!r}.")
    if lam <= 0:
        return None
    return _criterion_time(process, lam, criterion, 1e-6 * float(process.T))


@eqx.filter_jit
def _tweedie_fields(score_fn, process, states, ts):
    def one(x, t):
        return (x + process.b2(t) * score_fn(x, t)) / process.a(t)

    return jax.lax.map(lambda args: one(*args), (states, ts))


def score_criticality(
    score_fn: Callable[[Array, Array], Array],
    process: AbstractProcess,
    images: LatticeImages | ArrayLike,
    key: PRNGKeyArray,
    *,
    window: int,
    n: int = 16,
    ts: ArrayLike | None = None,
    n_steps: int = 40,
    criterion: Literal["score", "sde", "ode"] = "score",
    q: ArrayLike | None = None,
    n_boot: int = 200,
    method: str = "euler_maruyama",
) -> NetworkCriticality:
    r"""Measure $t_c$ of any batched score (a trained network or an exact machine) three ways.

    THEORY §4.6 with the detectors of :mod:`gltheory.criticality`: (1) softening of mode
    $q^\star$ at $x=0$, (2) the same along ``n`` reverse trajectories (``method``, from
    $\mathcal N(0,b_{t_0}^2I)$), (3) the $\xi$ peak of the denoised-field increments; and the
    theory: the patch model with ``window`` (§4.3; $q^\star=\arg\max_q\hat C_k(q)$ of the
    training data unless ``q`` is given) and the ideal score of the data spectrum (§1.4).

    **Uncertainty:** each estimate carries ``se`` (bootstrap over trajectories; 0 at $x=0$,
    which is deterministic) and ``interp_err`` (grid), see
    :class:`gltheory.criticality.CriticalTimeEstimate`.

    **Returns:** a :class:`NetworkCriticality`.
    """
    from .criticality import softening_time, trajectory_states, xi_peak_time
    from .field import patch_critical_point

    y, _ = _images_weights(images)
    lattice = y.shape[1:]
    dtype = y.dtype
    theory = patch_critical_point(process, window=int(window), images=images)
    q_star = jnp.asarray(theory.q_star if q is None else q, dtype).reshape(1, len(lattice))
    if ts is None:
        ts = _default_grid(process, n_steps, dtype, lo=-8.0, hi=8.0)
    ts = as_float_array(ts, "ts").astype(dtype)
    k_o, k_s, k_t, k_x, k_b = jax.random.split(key, 5)
    zeros = jnp.zeros((ts.shape[0], 1) + lattice, dtype)
    origin = softening_time(score_fn, process, zeros, ts, k_o, criterion=criterion, q=q_star)
    t_s, states = trajectory_states(score_fn, process, k_s, (n,) + lattice, ts=ts, method=method)
    traj = softening_time(
        score_fn,
        process,
        states,
        t_s,
        k_t,
        criterion=criterion,
        q=q_star,
        mode="peak",
        n_boot=n_boot,
    )
    # Tweedie denoised fields (x + b^2 s) / a at the saved states (same as denoised_fields)
    fields = _tweedie_fields(score_fn, process, states, t_s)
    xi = xi_peak_time(fields, t_s, k_x, n_boot=n_boot)
    return NetworkCriticality(
        origin=origin,
        trajectory=traj,
        xi_peak=xi,
        patch_theory=theory,
        data_theory=data_critical_time(images, process, criterion=criterion),
        window=int(window),
        q_star=q_star[0],
        criterion=criterion,
    )
