r"""Denoiser networks of lattice images and their score adapter.

Denoisers $F_\theta(\tilde x,\lambda)$ of one lattice image (shape ``(L,)`` or ``(H, W)``,
one channel) conditioned on the log-SNR $\lambda=\ln(a_t^2/b_t^2)$: :class:`ConvDenoiser`
(purely convolutional, receptive field exactly ``window``, circular or zero padding, FiLM
time conditioning), :class:`UNet` (two-level, circular padding) and :class:`MLPDenoiser`
(fully connected baseline). :class:`ScoreNetwork` turns one into a score ``score_fn(x, t)``
for :func:`gltheory.sample` and every spectral probe, through the process's $a_t$, $b_t$:
$$\tilde x = c_{\rm in}x,\quad c_{\rm in}=(a_t^2\sigma_{\rm d}^2+b_t^2)^{-1/2},\qquad
D(x,t)=\begin{cases}F_\theta(\tilde x,\lambda)&\text{"denoiser" (default)}\\
(x-b_tF_\theta(\tilde x,\lambda))/a_t&\text{"epsilon"}\\
\sigma_{\rm d}^2a_tc_{\rm in}^2\,x+\sigma_{\rm d}b_tc_{\rm in}F_\theta(\tilde x,\lambda)
&\text{"edm" (Karras et al.'s skip form)}\end{cases},\qquad
s(x,t)=\frac{a_tD(x,t)-x}{b_t^2}$$
(Tweedie's formula (Efron, JASA 2011)). Since $c_{\rm in}x=(y+\sigma z)/\sqrt{\sigma_{\rm d}^2+\sigma^2}$ with
$\sigma=b_t/a_t$, a network trained under one process serves every process (OU, VP, VE)
with the same log-SNR range. :func:`linear_denoiser` is the best linear (Wiener) denoiser of a
training set, the baseline a trained network must beat.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, ArrayLike, Float, Num, PRNGKeyArray, Real

from .._checks import (
    PROCESS,
    as_float_array,
    batch_time,
    check_instance,
    check_positive_int,
    check_time,
    check_values,
)
from ..data import LatticeImages
from ..processes import AbstractProcess
from .datasets import data_moments

__all__ = [
    "LOG_SNR_CLIP",
    "Padding",
    "Parametrisation",
    "log_snr_features",
    "AbstractDenoiserNet",
    "ConvDenoiser",
    "UNet",
    "MLPDenoiser",
    "ScoreNetwork",
    "linear_denoiser",
]

Padding = Literal["circular", "zero"]
Parametrisation = Literal["edm", "denoiser", "epsilon"]

LOG_SNR_CLIP = 30.0
"""The time embedding sees $\\lambda$ clipped to $[-30, 30]$ (keeps features finite as $t\\to0$)."""


# ----------------------------------------------------------------------------------------------
# time embedding and networks
# ----------------------------------------------------------------------------------------------


def log_snr_features(
    log_snr: Real[ArrayLike, ""], n_freq: int | np.integer
) -> Float[Array, " n_features"]:
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


class AbstractDenoiserNet(eqx.Module):
    r"""A network $F_\theta(\tilde x,\lambda)$ of one scaled lattice image and the log-SNR.

    ``__call__(x, log_snr)`` takes ``x`` of shape ``lattice`` (no batch, no channel axis) and
    a scalar $\lambda$ and returns an array shaped like ``x`` (a denoiser or noise estimate,
    see :class:`ScoreNetwork`).
    """

    lattice_ndim: eqx.AbstractVar[int]

    @abc.abstractmethod
    def __call__(
        self, x: Float[Array, "*lattice"], log_snr: Real[ArrayLike, ""]
    ) -> Float[Array, "*lattice"]:
        """The network's output for one image ``x`` at log-SNR ``log_snr``."""


def _conv(D, cin, cout, k, padding, key, dtype):
    mode = "CIRCULAR" if padding == "circular" else "ZEROS"
    return eqx.nn.Conv(D, cin, cout, k, padding=k // 2, padding_mode=mode, dtype=dtype, key=key)


def _radii(window: int, depth: int) -> tuple[int, ...]:
    r = window // 2
    q, rem = divmod(r, depth)
    return tuple(q + (1 if i < rem else 0) for i in range(depth))


class ConvDenoiser(AbstractDenoiserNet):
    r"""Purely convolutional denoiser with receptive field exactly ``window`` (Kamb & Ganguli, arXiv:2412.20292).

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

    convs: list[eqx.nn.Conv]
    film: eqx.nn.MLP
    lattice_ndim: int = eqx.field(static=True)
    window: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    padding: str = eqx.field(static=True)
    n_freq: int = eqx.field(static=True)

    def __init__(
        self,
        lattice_ndim: int | np.integer = 2,
        *,
        window: int | np.integer = 5,
        width: int | np.integer = 16,
        depth: int | np.integer = 3,
        padding: Padding | str = "circular",
        n_freq: int | np.integer = 8,
        film_width: int | np.integer = 32,
        radii: Sequence[int | np.integer] | None = None,
        key: PRNGKeyArray,
        dtype: DTypeLike | None = None,
    ):
        _check_lattice_ndim(lattice_ndim)
        check_positive_int(window, "window")
        if window % 2 == 0:
            raise ValueError(f"window must be odd (k = 2r + 1), got {window}.")
        check_positive_int(width, "width")
        check_positive_int(depth, "depth")
        check_positive_int(n_freq, "n_freq")
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

    def __call__(
        self, x: Float[Array, "*lattice"], log_snr: Real[ArrayLike, ""]
    ) -> Float[Array, "*lattice"]:
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

    enc: list[list[eqx.nn.Conv]]
    dec: list[list[eqx.nn.Conv]]
    out: eqx.nn.Conv
    film: eqx.nn.MLP
    lattice_ndim: int = eqx.field(static=True)
    widths: tuple[int, ...] = eqx.field(static=True)
    padding: str = eqx.field(static=True)
    n_freq: int = eqx.field(static=True)

    def __init__(
        self,
        lattice_ndim: int | np.integer = 2,
        *,
        widths: Sequence[int | np.integer] = (16, 32),
        padding: Padding | str = "circular",
        n_freq: int | np.integer = 8,
        film_width: int | np.integer = 32,
        key: PRNGKeyArray,
        dtype: DTypeLike | None = None,
    ):
        _check_lattice_ndim(lattice_ndim)
        widths = tuple(int(w) for w in widths)
        if len(widths) < 1 or any(w < 1 for w in widths):
            raise ValueError(f"widths must be a non-empty sequence of positive ints, got {widths}.")
        if padding not in ("circular", "zero"):
            raise ValueError(f"padding must be 'circular' or 'zero', got {padding!r}.")
        check_positive_int(n_freq, "n_freq")
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

    def __call__(
        self, x: Float[Array, "*lattice"], log_snr: Real[ArrayLike, ""]
    ) -> Float[Array, "*lattice"]:
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
        lattice_shape: Sequence[int | np.integer] | int | np.integer,
        *,
        width: int | np.integer = 128,
        depth: int | np.integer = 3,
        n_freq: int | np.integer = 8,
        key: PRNGKeyArray,
        dtype: DTypeLike | None = None,
    ):
        shape = tuple(int(s) for s in np.atleast_1d(lattice_shape))
        _check_lattice_ndim(len(shape))
        check_positive_int(width, "width")
        check_positive_int(depth, "depth")
        check_positive_int(n_freq, "n_freq")
        self.lattice_shape, self.lattice_ndim, self.n_freq = shape, len(shape), n_freq
        d = int(np.prod(shape))
        self.mlp = eqx.nn.MLP(
            d + 2 * n_freq + 1, d, width, depth, jax.nn.silu, dtype=dtype, key=key
        )

    def __call__(
        self, x: Float[Array, "*lattice"], log_snr: Real[ArrayLike, ""]
    ) -> Float[Array, "*lattice"]:
        if tuple(x.shape) != self.lattice_shape:
            raise ValueError(
                f"MLPDenoiser built for {self.lattice_shape}, got x of shape {x.shape}."
            )
        dtype = self.mlp.layers[0].weight.dtype
        feats = log_snr_features(jnp.asarray(log_snr, dtype), self.n_freq)
        return self.mlp(jnp.concatenate([x.astype(dtype).reshape(-1), feats])).reshape(x.shape)


class ScoreNetwork(eqx.Module):
    r"""A denoiser network as a score function of a process (module docstring, Tweedie's formula (Efron, JASA 2011)).

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
    sigma_data: Float[Array, ""]
    parametrisation: str = eqx.field(static=True)

    def __init__(
        self,
        net: AbstractDenoiserNet,
        process: AbstractProcess,
        *,
        parametrisation: Parametrisation | str = "denoiser",
        sigma_data: Real[ArrayLike, ""] = 1.0,
    ):
        check_instance(net, AbstractDenoiserNet, "net", "a gltheory denoiser network")
        check_instance(process, AbstractProcess, "process", PROCESS)
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

    def denoise(self, x: Num[ArrayLike, "*x"], t: Real[ArrayLike, "*t"]) -> Float[Array, "*x"]:
        """Denoiser $D(x,t)\\approx\\mathbb E[y\\mid x_t=x]$, shaped like ``x``."""
        x, t, _ = self._prep(x, t)
        return _field_jit(self, x, t, "denoise")

    def score(self, x: Num[ArrayLike, "*x"], t: Real[ArrayLike, "*t"]) -> Float[Array, "*x"]:
        r"""Score $s=(a_tD-x)/b_t^2$, shaped like ``x``."""
        x, t, _ = self._prep(x, t)
        return _field_jit(self, x, t, "score")

    def epsilon(self, x: Num[ArrayLike, "*x"], t: Real[ArrayLike, "*t"]) -> Float[Array, "*x"]:
        r"""Noise estimate $\hat\epsilon=(x-a_tD)/b_t=-b_ts$, shaped like ``x``."""
        x, t, _ = self._prep(x, t)
        return _field_jit(self, x, t, "epsilon")

    def __call__(self, x: Num[ArrayLike, "*x"], t: Real[ArrayLike, "*t"]) -> Float[Array, "*x"]:
        """Alias of :meth:`score`, so the module is a ``score_fn(x, t)``."""
        return self.score(x, t)


@eqx.filter_jit
def _field_jit(model: ScoreNetwork, x, t, field: str):
    return model._field(x, t, field)


# ----------------------------------------------------------------------------------------------
# the best linear (Wiener) denoiser, the baseline of a trained network
# ----------------------------------------------------------------------------------------------


class _LinearDenoiser(eqx.Module):
    """The Wiener filter of :func:`linear_denoiser` in the eigenbasis of the data covariance."""

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


def linear_denoiser(
    images: LatticeImages | Real[ArrayLike, " n *lattice"], process: AbstractProcess
) -> Callable[[Array, ArrayLike], Array]:
    r"""The best linear denoiser $D(x,t)=m+a_tC(a_t^2C+b_t^2I)^{-1}(x-a_tm)$ (batched ``x``, ``t``).

    The Wiener filter of :func:`linear_denoiser_loss`, applied in the eigenbasis of $C$.
    """
    m, C = data_moments(images)
    evals, evecs = jnp.linalg.eigh(C)
    return _LinearDenoiser(m, jnp.clip(evals, 0.0, None), evecs, process)
