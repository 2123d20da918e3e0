r"""Exact local (LS), equivariant local (ELS) and boundary-broken (bbELS) patch scores.

The patch machines of Kamb & Ganguli (`docs/theory/patch.md#machines`) and the patch score model of
`docs/theory/patch.md#patch-posterior`. At every lattice site $i$ the posterior over a set of *candidate patches*
$\phi$ (clean training patches) given the noisy neighbourhood $x_{i+\Omega}$ is

$$
w_i(\phi)\propto\mu(\phi)\exp\!\Big(-\frac{\|x_{i+\Omega}-a_t\phi\|^2}{2b_t^2}\Big)
\;\propto\;\mu(\phi)\exp\!\Big(\frac{a_t}{b_t^2}\langle x_{i+\Omega},\phi\rangle
-\frac{a_t^2}{2b_t^2}\|\phi\|^2\Big),
$$

($\mu$ the training weight; the $\|x_{i+\Omega}\|^2$ term is common to all candidates and
dropped, `docs/theory/patch.md#fast-patch-score`), and the score and denoiser at site $i$ are

$$
m_i=\langle\phi(0)\rangle_{w_i},\qquad s_i=\frac{a_t\,m_i-x_i}{b_t^2},
$$

$\phi(0)$ being the centre pixel (all channels) of the candidate.

**Machines.** Each machine is a value, an equinox module built from its training images and
its window (:class:`IS`, :class:`ES`, :class:`LS`, :class:`ELS`, :class:`BoundaryELS`, all
:class:`AbstractPatchMachine`, itself a :class:`gltheory.AbstractData`), accepted wherever a
dataset is: ``gltheory.score(machine, process, x, t)``, ``gltheory.denoiser``,
``gltheory.sample(lambda x, t: gltheory.score(machine, process, x, t), ...)``. The function
forms :func:`score`, :func:`denoiser` and :func:`posterior_stats` take the same arguments in
the same order (a machine, a :class:`PatchBank` or raw images first, then process, x, t);
with raw images or a bank the machine is selected by ``window``, ``equivariant`` and
``boundary``:

- *IS* (``window=None``, ``equivariant=False``): the window covers the whole lattice, the
  ideal memorising score, identical to ``gltheory.score(LatticeImages(images), ...)``.
- *ES* (``window=None`` or $k$ equal to the lattice size on every axis, ``equivariant=True``,
  ``boundary="periodic"``): the whole-image window with all circular shifts of all training
  images as candidates, the equivariant ideal score; computed by FFT cross-correlations.
- *LS* (``equivariant=False``): candidates at site $i$ are the $N$ training patches at the
  same site; zero padding, i.e. the window is cropped at the border (``boundary`` is then
  irrelevant: the LS window is always cropped, as in the reference code). With
  $k\ge2H-1$ LS equals IS (`docs/theory/patch.md#machines`).
- *ELS* (``equivariant=True, boundary="periodic"``): $x$ is circularly padded, and the
  candidates are all patches of all training images at all positions, **taken with circular
  padding of the training images too** (the patch bank $\mathcal P$ of `docs/theory/patch.md#patch-posterior`; this makes the
  two uniform images $\pm\mathbf1$ reproduce :func:`gltheory.scores.uniform_patch_score` exactly
  and the machine commute with circular shifts). ``training_padding="valid"`` in
  :func:`bank` selects the reference code's choice instead (only the
  $(H-k+1)(W-k+1)$ valid patches per image).
- *bbELS* (``equivariant=True, boundary="zero"``): $x$ and the training images are zero
  padded; a site in the $k//2$-wide border bands only uses training patches taken at the
  same border offset (same depth from the same edge, any position along it; corners only
  from the same corner), interior sites use all interior (valid) patches. If the window
  is at least as large as the lattice along a lattice axis (``k >= H``) it falls back to LS.

**Layout.** ``images`` has shape ``(N, *lattice)`` or ``(N, *lattice, C)`` with
``lattice = (L,)`` or ``(H, W)``; ``lattice_ndim`` (1 or 2, default ``images.ndim - 1``,
i.e. no channel axis) says which. ``x`` has shape ``(*batch, *lattice[, C])`` with the same
trailing axes as one image. ``window`` is an odd integer $k$ (a $k$ or $k\times k$ window)
or a tuple of odd integers, one per lattice axis. A 1-D lattice is handled internally as a
$1\times L$ lattice with a $1\times k$ window.

**Streaming.** Candidates are processed in chunks with an online log-sum-exp: a running
maximum and running sums rescaled when the maximum grows, normalised once at the end; a
last chunk is a window overlapping its predecessor whose overlap is masked (so the bank is
never copied or padded, and the result does not depend on the chunk size); chunks are
balanced and, by default, sized to keep one chunk's logits near $2^{20}$ numbers. The batch
is processed in fixed-shape blocks of about 1024 query rows (trajectories x sites, padded),
and the chunk size depends on the block, never on the batch, so a trajectory's statistics are
bitwise independent of the batch size; the one-pass shift below is certified site by site
for the same reason. Peak memory is $O(\text{block}\times\text{sites}\times\text{chunk})$;
the chunk size is set from ``memory_budget`` (bytes) unless given.

**Speed.** ELS logits are one GEMM per chunk (queries $[\lambda x_{i+\Omega},\,\mu,\,1]$,
keys $[\phi,\,\|\phi\|^2,\,\ln\mu(\phi)]$: the bias rides in the GEMM); identical candidate
patches are merged once in :func:`bank` and their multiplicity is added to the bias
(exact). The softmax needs no running maximum: every logit is at most
$U_i=\|x_{i+\Omega}\|^2/(2b^2)+\max\ln\mu$ (the dropped term), so with the constant shift
$s_i=\max(U_i-G,\,M_i^{(1)})$ ($M^{(1)}$ the first chunk's maximum, $G=30$ in float32, 300 in
float64) nothing overflows and one pass accumulates plain sums; the shift is certified exact
when $M^{(1)}_i\ge U_i-G-T$ at every site (the sum is then $\ge e^{-T}$, far above what
underflow can lose), otherwise the call runs the running-maximum algorithm instead (queries
far from all training patches at small $t$, bbELS). The one-pass sums are weighted sums of
$e=\exp(\ell-s)$ over the chunk with rows $[1,\,v,\,v^2,\,v^4]$; on CPU they are written as
a multiply-reduce that XLA fuses with the GEMM and the exp, so a chunk's logits never reach
memory (about 1.5x faster than materialising them); on accelerators they are a second GEMM.
LS uses box filters with cumulative sums,
$O(NL)$ whatever the window; ES uses FFTs, $O(NL\log L)$ instead of $O(NL^2)$.

**Memory.** :func:`bank` stores the candidate patches ($N L k^D C$ numbers) only up to
:data:`MATERIALIZE_MAX_BYTES`; above that (or with ``materialize=False``) it keeps the images
and each chunk's patches are cut out inside the loop, so the peak memory is the images plus
one chunk, whatever $N$.

**float32.** The logits are $O(a P/b^2)$; at very small $b_t^2$ their float32 round-off
reaches $O(1)$, so the weights (not the finiteness) degrade: use float64 there.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Shaped

from ._checks import (
    PROCESS,
    as_float_array,
    batch_time,
    check_instance,
    check_time,
    is_concrete,
    trusted,
)
from .data import AbstractData, LatticeImages
from .lattice import map_batch_blocks
from .processes import AbstractProcess

__all__ = [
    "AbstractPatchMachine",
    "IS",
    "ES",
    "LS",
    "ELS",
    "BoundaryELS",
    "PatchBank",
    "PatchPosterior",
    "bank",
    "score",
    "denoiser",
    "posterior_stats",
    "DEFAULT_MEMORY_BUDGET",
    "MATERIALIZE_MAX_BYTES",
]

DEFAULT_MEMORY_BUDGET = 2**27
"""Default bound (bytes, 128 MiB) on the per-chunk working memory of the streaming softmax."""

MATERIALIZE_MAX_BYTES = 2**28
""":func:`bank` stores the candidate patches when they take at most this (256 MiB)."""

Boundary = Literal["periodic", "zero"]


# ----------------------------------------------------------------------------------------------
# geometry and validation
# ----------------------------------------------------------------------------------------------


def _canon_images(images, lattice_ndim):
    """Return (images (N, H, W, C) array, log_weights (N,), lattice_ndim, lattice, channels)."""
    if isinstance(images, LatticeImages):
        imgs, logw = images.images, jnp.log(images.weights)
    else:
        imgs = as_float_array(images, "images")
        logw = None
    if lattice_ndim is None:
        lattice_ndim = imgs.ndim - 1
    if lattice_ndim not in (1, 2):
        raise ValueError(
            f"lattice_ndim must be 1 or 2, got {lattice_ndim!r} (images shape {imgs.shape}; "
            "pass lattice_ndim=2 for images shaped (N, H, W, C))."
        )
    if imgs.ndim not in (lattice_ndim + 1, lattice_ndim + 2):
        raise ValueError(
            f"images must have shape (N, *lattice) or (N, *lattice, C) with {lattice_ndim} "
            f"lattice axes, got shape {imgs.shape}."
        )
    if imgs.shape[0] == 0:
        raise ValueError("images is empty: a patch score needs at least one training image.")
    if any(s < 1 for s in imgs.shape[1:]):
        raise ValueError(f"images has an empty lattice or channel axis: shape {imgs.shape}.")
    channels = imgs.ndim == lattice_ndim + 2
    lattice = tuple(imgs.shape[1 : 1 + lattice_ndim])
    c = imgs.shape[-1] if channels else 1
    n = imgs.shape[0]
    h, w = (1, lattice[0]) if lattice_ndim == 1 else lattice
    imgs4 = imgs.reshape(n, h, w, c)
    if logw is None:
        logw = jnp.full((n,), -math.log(n), dtype=imgs.dtype)
    return imgs4, logw, lattice_ndim, lattice, channels


def _canon_window(window, lattice_ndim, lattice):
    """Return the window as (kh, kw) (kh = 1 for 1-D); ``None`` -> covers the lattice."""
    if window is None:
        return None
    if isinstance(window, (int, np.integer)) and not isinstance(window, bool):
        ks = (int(window),) * lattice_ndim
    elif isinstance(window, tuple) and all(
        isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in window
    ):
        ks = tuple(int(k) for k in window)
        if len(ks) != lattice_ndim:
            raise ValueError(
                f"window={window!r} must have one size per lattice axis ({lattice_ndim})."
            )
    else:
        raise ValueError(
            f"window must be an odd positive integer or a tuple of them, got {window!r}."
        )
    if any(k < 1 or k % 2 == 0 for k in ks):
        raise ValueError(f"window sizes must be odd positive integers, got {window!r}.")
    return (1, ks[0]) if lattice_ndim == 1 else ks


def _full_window(h, w):
    """A window covering the lattice from every site (zero padding): k = 2n - 1."""
    return (2 * h - 1, 2 * w - 1)


def _machine(kernel, equivariant, boundary, hw):
    if boundary not in ("periodic", "zero"):
        raise ValueError(f"boundary must be 'periodic' or 'zero', got {boundary!r}.")
    if not isinstance(equivariant, bool):
        raise ValueError(f"equivariant must be True or False, got {equivariant!r}.")
    if kernel is None:
        if equivariant and boundary == "periodic":
            return "es"  # all circular shifts of all images, whole-image window (FFT)
        return "ls"  # IS; bbELS with a whole-lattice window falls back to LS
    if not equivariant:
        return "ls"
    if boundary == "periodic":
        for k, n in zip(kernel, hw):
            if k > n:
                raise ValueError(
                    f"window {k} exceeds the lattice size {n}: the periodic ELS window must fit "
                    "in the lattice (use equivariant=False or boundary='zero')."
                )
        return "els"
    if any(k > 1 and k >= n for k, n in zip(kernel, hw)):
        return "ls"  # bbELS falls back to LS when k >= H (`docs/theory/patch.md#machines`)
    return "bbels"


# ----------------------------------------------------------------------------------------------
# patch extraction (shared by queries and candidates)
# ----------------------------------------------------------------------------------------------


def _patches(z: Array, kernel, mode: str) -> Array:
    """All patches of ``z`` (B, H, W, C) -> (B, H*W, kh*kw*C), ordered (dh, dw, c)."""
    b, h, w, c = z.shape
    rh, rw = kernel[0] // 2, kernel[1] // 2
    pad = ((0, 0), (rh, rh), (rw, rw), (0, 0))
    zp = jnp.pad(z, pad, mode="wrap" if mode == "periodic" else "constant")
    cols = [
        zp[:, dh : dh + h, dw : dw + w, :] for dh in range(kernel[0]) for dw in range(kernel[1])
    ]
    return jnp.stack(cols, axis=3).reshape(b, h * w, kernel[0] * kernel[1] * c)


def _axis_class(n: int, r: int) -> np.ndarray:
    """Border class along one axis: depth d from the start -> d, from the end -> r + d, else 2r."""
    i = np.arange(n)
    cls = np.full(n, 2 * r)
    top = i < r
    bot = i >= n - r
    cls[top] = i[top]
    cls[bot] = r + (n - 1 - i[bot])
    return cls


def _site_classes(kernel, hw) -> np.ndarray:
    """bbELS border-offset class of every site, shape (H*W,)."""
    rh, rw = kernel[0] // 2, kernel[1] // 2
    ch, cw = _axis_class(hw[0], rh), _axis_class(hw[1], rw)
    return (ch[:, None] * (2 * rw + 1) + cw[None, :]).reshape(-1)


# ----------------------------------------------------------------------------------------------
# the precomputed bank
# ----------------------------------------------------------------------------------------------


class PatchBank(eqx.Module):
    r"""Candidate patches of a training set for one patch machine, built by :func:`bank`.

    For ELS/bbELS: ``keys`` (M, P) distinct candidate patches, ``sqnorm`` $\|\phi\|^2$,
    ``log_mult`` $\ln\sum$ (training weights of the identical copies), ``values`` (M, C) the
    centre pixels and ``cls`` (M,) the border-offset class (0 for ELS). ``ent_bias``
    $=\overline{\ln\mu}-\ln\sum\mu$ over each merged group keeps the entropy that of the
    unmerged posterior: $H=\ln Z-\langle\text{logit}+\text{ent\_bias}\rangle$. For LS/IS: ``keys``
    holds the images (N, H, W, C), ``sqnorm`` the box sums $\mathrm{box}_\Omega[|y_n|^2]$
    (N, H, W), ``log_mult`` the log training weights, ``values`` and ``cls`` are unused.
    """

    keys: Array
    sqnorm: Array
    log_mult: Array
    ent_bias: Array
    values: Array
    cls: Array
    kind: str = eqx.field(static=True)
    kernel: tuple[int, int] = eqx.field(static=True)
    window: int | tuple[int, ...] | None = eqx.field(static=True)
    equivariant: bool = eqx.field(static=True)
    boundary: str = eqx.field(static=True)
    lattice: tuple[int, ...] = eqx.field(static=True)
    channels: bool = eqx.field(static=True)
    lattice_ndim: int = eqx.field(static=True)
    training_padding: str = eqx.field(static=True)
    streamed: bool = eqx.field(static=True, default=False)

    @property
    def num_candidates(self) -> int:
        """Number of (merged) candidates streamed per site (for LS: training images)."""
        if self.kind == "es":
            return self.keys.shape[0] * int(np.prod(self.keys.shape[1:3]))
        if self.streamed:
            h, w = self.keys.shape[1:3]
            keep, _ = _bank_site_masks(self, (h, w))
            return self.keys.shape[0] * int(keep.sum())
        return self.keys.shape[0]

    @property
    def image_shape(self) -> tuple[int, ...]:
        """The trailing shape ``x`` must have: ``lattice`` or ``(*lattice, C)``."""
        raw = self.kind in ("ls", "es") or self.streamed
        c = self.keys.shape[-1] if raw else self.values.shape[-1]
        return self.lattice + ((c,) if self.channels else ())


def _box(z: Array, kernel) -> Array:
    """Zero-padded (cropped) box sum over the window of ``z`` (..., H, W) with cumsums."""
    for ax, k in zip((-2, -1), kernel):
        n = z.shape[ax]
        r = min(k // 2, n - 1)
        if r == 0:
            continue
        pad = [(0, 0)] * z.ndim
        pad[ax] = (r + 1, r)
        cs = jnp.cumsum(jnp.pad(z, pad), axis=ax)
        hi = jax.lax.slice_in_dim(cs, 2 * r + 1, 2 * r + 1 + n, axis=ax)
        lo = jax.lax.slice_in_dim(cs, 0, n, axis=ax)
        z = hi - lo
    return z


def bank(
    images: LatticeImages | ArrayLike,
    *,
    window: int | tuple[int, ...] | None,
    equivariant: bool = True,
    boundary: Boundary | str = "periodic",
    lattice_ndim: int | None = None,
    merge: bool = True,
    training_padding: Literal["circular", "valid"] | str = "circular",
    materialize: bool | None | Any = None,
) -> PatchBank:
    r"""Precompute the candidate patches of ``images`` for one patch machine (once per dataset).

    Extracts every training patch $y^\mu_{i+\Omega}$ (with the padding rules of the machine,
    see the module docstring), its squared norm $\|\phi\|^2$, its centre pixel and (bbELS) its
    border-offset class, and merges identical candidates, adding $\ln(\text{multiplicity})$
    (more precisely the log of the summed training weights) to the logit bias. Merging is
    exact: $\sum_{\text{copies}} e^{\ell}=e^{\ell+\ln m}$. It needs concrete images (outside
    ``jit`` or closed over); with traced images it is skipped.

    **Arguments:**

    - `images`: a :class:`gltheory.LatticeImages` (its weights are used) or an array of shape
      ``(N, *lattice[, C])``.
    - `window`: odd $k$ (or one odd size per lattice axis); ``None`` = whole image (IS).
    - `equivariant`, `boundary`: the machine (LS, ELS, bbELS; module docstring).
    - `lattice_ndim`: 1 or 2 (default ``images.ndim - 1``: no channel axis).
    - `merge`: merge identical candidate patches (ELS/bbELS).
    - `training_padding`: ELS only: ``"circular"`` (all $N L$ patches, default, `docs/theory/patch.md#patch-posterior`)
      or ``"valid"`` (only patches inside the image, as in Kamb & Ganguli's code).
    - `materialize`: ELS/bbELS: store every candidate patch (``True``; needed for merging) or
      keep only the images and extract each chunk's patches inside the streaming loop
      (``False``; memory $O(N L)$ instead of $O(N L k^D)$). ``None`` (default) materialises
      when the patch array takes at most :data:`MATERIALIZE_MAX_BYTES`.

    The ES machine (``equivariant=True``, ``boundary="periodic"`` and a window covering the
    lattice: ``window=None`` or $k$ equal to the lattice size on every axis, circular
    training padding) keeps the images: its logits for all circular shifts are one FFT
    cross-correlation per image, $O(L\log L)$ instead of $O(L^2)$.

    **Returns:** a :class:`PatchBank` to pass to :func:`score` in place of ``images`` (the patch
    machines :class:`IS`, :class:`ES`, :class:`LS`, :class:`ELS`, :class:`BoundaryELS` hold one).
    """
    imgs, logw, lattice_ndim, lattice, channels = _canon_images(images, lattice_ndim)
    if is_concrete((imgs, logw)):
        # evaluate eagerly even inside jit, so that duplicate merging (NumPy) can run
        with jax.ensure_compile_time_eval():
            return _build_bank(
                imgs,
                logw,
                lattice_ndim,
                lattice,
                channels,
                window,
                equivariant,
                boundary,
                merge,
                training_padding,
                materialize,
            )
    return _build_bank(
        imgs,
        logw,
        lattice_ndim,
        lattice,
        channels,
        window,
        equivariant,
        boundary,
        merge,
        training_padding,
        materialize,
    )


def _build_bank(
    imgs,
    logw,
    lattice_ndim,
    lattice,
    channels,
    window,
    equivariant,
    boundary,
    merge,
    training_padding,
    materialize,
):
    n, h, w, c = imgs.shape
    kernel = _canon_window(window, lattice_ndim, lattice)
    kind = _machine(kernel, equivariant, boundary, (h, w))
    if training_padding not in ("circular", "valid"):
        raise ValueError(
            f"training_padding must be 'circular' or 'valid', got {training_padding!r}."
        )
    if materialize not in (None, True, False):
        raise ValueError(f"materialize must be True, False or None, got {materialize!r}.")
    if kind == "els" and training_padding == "circular" and kernel == (h, w):
        kind = "es"  # a periodic window covering the lattice: the whole-image equivariant score
    if kernel is None:
        kernel = (h, w) if kind == "es" else _full_window(h, w)
    patch_bytes = n * h * w * kernel[0] * kernel[1] * c * imgs.dtype.itemsize
    streamed = kind in ("els", "bbels") and (
        materialize is False or (materialize is None and patch_bytes > MATERIALIZE_MAX_BYTES)
    )
    common = dict(
        kind=kind,
        kernel=kernel,
        window=window,
        equivariant=equivariant,
        boundary=boundary,
        lattice=lattice,
        channels=channels,
        lattice_ndim=lattice_ndim,
        training_padding=training_padding,
        streamed=streamed,
    )
    if kind in ("es", "els", "bbels") and (kind == "es" or streamed):
        empty = jnp.zeros((0,), imgs.dtype)
        return PatchBank(imgs, empty, logw, empty, empty, jnp.zeros((0,), jnp.int32), **common)
    if kind == "ls":
        sq = _box(jnp.sum(imgs**2, axis=-1), kernel)
        empty = jnp.zeros((0,), imgs.dtype)
        return PatchBank(
            imgs, sq, logw, jnp.zeros_like(logw), empty, jnp.zeros((0,), jnp.int32), **common
        )

    mode = "periodic" if kind == "els" else "zero"
    keys = _patches(imgs, kernel, mode)  # (N, S, P)
    s_sites = h * w
    if kind == "els":
        cls = np.zeros(s_sites, np.int32)
        keep = np.ones(s_sites, bool)
        if training_padding == "valid":
            rh, rw = kernel[0] // 2, kernel[1] // 2
            ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
            keep = ((ii >= rh) & (ii < h - rh) & (jj >= rw) & (jj < w - rw)).reshape(-1)
    else:
        cls = _site_classes(kernel, (h, w)).astype(np.int32)
        keep = np.ones(s_sites, bool)
    idx = np.nonzero(keep)[0]
    keys = keys[:, idx, :].reshape(-1, keys.shape[-1])
    cls_all = np.tile(cls[idx], n)
    logw_all = jnp.repeat(logw, idx.size)

    if merge and is_concrete((keys, logw_all)):
        kn = np.asarray(keys)
        rows = np.concatenate([cls_all[:, None].astype(kn.dtype), kn], axis=1)
        _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        wn = np.exp(np.asarray(logw_all, dtype=np.float64))
        mult = np.zeros(first.size)
        np.add.at(mult, inverse, wn)
        keys = keys[first]
        cls_all = cls_all[first]
        wlogw = np.zeros(first.size)
        np.add.at(wlogw, inverse, np.where(wn > 0, wn * np.log(np.where(wn > 0, wn, 1)), 0))
        log_mult = jnp.asarray(np.log(mult), dtype=keys.dtype)
        ent_bias = jnp.asarray(wlogw / mult - np.log(mult), dtype=keys.dtype)
    else:
        log_mult = logw_all
        ent_bias = jnp.zeros_like(logw_all)
    centre = (kernel[0] // 2) * kernel[1] + kernel[1] // 2
    values = keys[:, centre * c : (centre + 1) * c]
    sq = jnp.sum(keys**2, axis=-1)
    return PatchBank(
        keys, sq, log_mult, ent_bias, values, jnp.asarray(cls_all, jnp.int32), **common
    )


# ----------------------------------------------------------------------------------------------
# streaming posterior accumulation
# ----------------------------------------------------------------------------------------------


class _Acc(NamedTuple):
    mx: Array  # (B, S) running max of the logits
    z: Array  # (B, S) sum exp(logit - mx)
    m1: Array  # (B, S, C) sum exp(.) v
    m2: Array  # (B, S, C) sum exp(.) v^2
    m4: Array  # (B, S, C) sum exp(.) v^4
    el: Array  # (B, S) sum exp(.) * (logit - log_mult)  (for the entropy)


def _acc_init(b, s, c, dtype):
    zero = jnp.zeros((b, s), dtype)
    zc = jnp.zeros((b, s, c), dtype)
    return _Acc(jnp.full((b, s), -jnp.inf, dtype), zero, zc, zc, zc, zero)


def _acc_update(acc: _Acc, logit: Array, ent: Array, v: Array, per_site: bool) -> _Acc:
    """Fold one chunk into the running sums (online log-sum-exp, never normalised per chunk).

    ``logit`` (B, S, c) with -inf for masked candidates; ``ent`` = logit + ent_bias, finite
    (0 where masked), accumulated for the entropy; ``v`` the centre values, (c, C) or per site (S, c, C).
    """
    mx = jnp.maximum(acc.mx, jnp.max(logit, axis=-1))
    shift = jnp.where(jnp.isfinite(mx), mx, 0.0)
    scale = jnp.exp(acc.mx - shift)  # 0 when acc.mx = -inf
    e = jnp.exp(logit - shift[..., None])  # 0 for masked candidates
    el = jnp.sum(e * ent, axis=-1)
    if per_site:
        mom = lambda p: jnp.einsum("bsk,skc->bsc", e, v**p)
    else:
        mom = lambda p: jnp.einsum("bsk,kc->bsc", e, v**p)
    sc = scale[..., None]
    return _Acc(
        mx,
        acc.z * scale + jnp.sum(e, axis=-1),
        acc.m1 * sc + mom(1),
        acc.m2 * sc + mom(2),
        acc.m4 * sc + mom(4),
        acc.el * scale + el,
    )


_CACHE_LOGITS = 2**20


def _chunk(m: int, chunk_size, per_candidate_bytes: int, memory_budget) -> int:
    if chunk_size is not None:
        if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}.")
        return int(min(chunk_size, m))
    if not isinstance(memory_budget, (int, float)) or memory_budget <= 0:
        raise ValueError(
            f"memory_budget must be a positive number of bytes, got {memory_budget!r}."
        )
    return int(max(1, min(m, memory_budget // max(per_candidate_bytes, 1))))


def _balanced(m: int, chunk: int) -> int:
    """Spread ``m`` candidates evenly over ``ceil(m / chunk)`` chunks (no mostly-empty last one)."""
    n_chunks = -(-m // chunk)
    return -(-m // n_chunks)


def _chunk_for(bank: PatchBank, bsz, s, c, dtype, chunk_size, memory_budget) -> int:
    """Candidates per chunk: ``chunk_size`` or the largest fitting ``memory_budget`` bytes."""
    item = jnp.dtype(dtype).itemsize
    per = bsz * s * item * ((8 + 3 * c) if bank.kind == "ls" else (6 + 3 * c))
    if bank.kind == "es":  # chunks of images: ~10 complex/real (B, H, W) arrays per image
        per = bsz * s * item * (24 + 6 * c)
    m = bank.keys.shape[0]
    if bank.streamed:  # chunks of images, each bringing its S patches
        per *= s
    chunk = _chunk(m, chunk_size, per, memory_budget)
    if bank.streamed and chunk_size is None:
        chunk = min(chunk, max(1, _CACHE_LOGITS // max(bsz * s * s, 1)))
    if chunk_size is None:
        # keep one chunk's logits near 2^20 numbers (cache-sized; measured in
        # benchmarks/bench_patch.py), never above the memory budget
        chunk = min(chunk, max(256, _CACHE_LOGITS // max(bsz * s, 1)))
    return _balanced(m, chunk)


def _posterior_sums(
    bank: PatchBank, x4: Array, a: Array, b2: Array, chunk: int, moments: bool = True
):
    """Stream over candidate chunks; x4 (B, H, W, C), a, b2 (B,). Returns (shift, _Sums): the
    sums are relative to ``exp(shift)`` (B, S)."""
    bsz, h, w, c = x4.shape
    s = h * w
    dtype = x4.dtype
    lam = (a / b2)[:, None, None]  # coefficient of the cross term
    mu = (-0.5 * a**2 / b2)[:, None, None]  # coefficient of |phi|^2
    m = bank.keys.shape[0]
    n_chunks = -(-m // chunk)

    def window_of(i, arr):
        """Chunk i: rows [start, start + chunk) with start clamped so the slice stays inside the
        bank (the last chunk overlaps its predecessor; the overlap is masked, so nothing is
        counted twice and the bank is never copied or padded)."""
        start = jnp.minimum(i * chunk, m - chunk)
        return jax.lax.dynamic_slice_in_dim(arr, start, chunk, axis=0), start

    def fresh(i, start):
        return (start + jnp.arange(chunk)) >= i * chunk  # (k,) not seen in earlier chunks

    if bank.kind == "ls":
        keys_all = bank.keys.astype(dtype)
        sq_all = bank.sqnorm.astype(dtype)
        lw_all = bank.log_mult.astype(dtype)

        def body(acc, i):
            y, start = window_of(i, keys_all)  # (k, H, W, C)
            q, _ = window_of(i, sq_all)  # (k, H, W)
            lm, _ = window_of(i, lw_all)  # (k,)
            cross = _box(jnp.einsum("bhwc,khwc->bkhw", x4, y), bank.kernel)
            ell = lam * cross.reshape(bsz, chunk, s) + mu * q.reshape(1, chunk, s)
            ell = jnp.swapaxes(ell, 1, 2)  # (B, S, k)
            valid = jnp.isfinite(lm) & fresh(i, start)
            ent = jnp.where(valid, ell + jnp.where(valid, lm, 0.0), 0.0)
            logit = jnp.where(valid, ent, -jnp.inf)
            v = jnp.swapaxes(y.reshape(chunk, s, c), 0, 1)  # (S, k, C)
            return _acc_update(acc, logit, ent, v, True), None

        acc, _ = jax.lax.scan(body, _acc_init(bsz, s, c, dtype), jnp.arange(n_chunks))
        return acc.mx, _Sums(acc.z, acc.m1, acc.m2, acc.m4, acc.el)
    if bank.kind == "es":
        return _es_sums(bank, x4, a, b2, chunk)
    return _els_sums(bank, x4, a, b2, chunk, moments)


# ----------------------------------------------------------------------------------------------
# ELS / bbELS: GEMM logits, shift by an analytic bound (one pass), online fallback
# ----------------------------------------------------------------------------------------------

# Constant-shift pass: every logit is bounded by U = |q|^2/(2 b^2) + max ln(mult) (the dropped
# ||x_patch||^2 term, `docs/theory/patch.md#fast-patch-score`), so with the shift s >= U - G nothing overflows (e^G at
# most). It is exact unless a site's largest logit lies more than G + T below U (then the
# terms could underflow): the first chunk's maximum M_1 <= max logit certifies every site, and
# otherwise the call takes the online running-maximum path.
_SHIFT_G = {4: 30.0, 8: 300.0}  # float32: e^30 * 1e7 candidates * |v|^4 stays far from overflow
_SHIFT_T = {4: 50.0, 8: 600.0}  # z >= e^-T >> (number of candidates) * (smallest normal)


def _sums_as_dot() -> bool:
    """Whether the ELS fast pass forms its chunk sums as a GEMM (accelerators) rather than as
    the multiply-reduce that XLA:CPU fuses with the logit GEMM and the exp (read at trace time)."""
    return jax.default_backend() != "cpu"


def _neg(dtype):
    """A finite stand-in for -inf (masked candidates): exp() of it is 0, 0 * it is not NaN."""
    return jnp.asarray(-jnp.finfo(dtype).max / 8, dtype)


def _els_chunks(bank: PatchBank, dtype, chunk: int, hw):
    """(number of chunks, chunk(i) -> (keys_aug (k, P+2), values (k, C), ent_bias (k,), cls (k,)),
    max log-multiplicity). ``keys_aug`` rows are [phi, |phi|^2, ln mult] (masked rows get a
    -huge ln mult), so one GEMM with queries [lam q, mu, 1] gives the logits with their bias."""
    neg = _neg(dtype)
    h, w = hw
    kh, kw = bank.kernel
    centre = (kh // 2) * kw + kw // 2
    if not bank.streamed:
        m = bank.keys.shape[0]
        lm_all = jnp.where(jnp.isfinite(bank.log_mult), bank.log_mult, -jnp.inf)

        def get(i):
            start = jnp.minimum(i * chunk, m - chunk)
            sl = lambda arr: jax.lax.dynamic_slice_in_dim(arr, start, chunk, axis=0)
            fresh = (start + jnp.arange(chunk)) >= i * chunk
            keys = sl(bank.keys).astype(dtype)
            lm = sl(lm_all).astype(dtype)
            lm = jnp.where(fresh & jnp.isfinite(lm), lm, neg)
            sq = sl(bank.sqnorm).astype(dtype)
            aug = jnp.concatenate([keys, sq[:, None], lm[:, None]], axis=1)
            return aug, sl(bank.values).astype(dtype), sl(bank.ent_bias).astype(dtype), sl(bank.cls)

        return -(-m // chunk), get, jnp.max(lm_all).astype(dtype)

    # streamed bank: candidates are extracted from `chunk` training images at a time
    imgs, logw = bank.keys, bank.log_mult
    n = imgs.shape[0]
    mode = "periodic" if bank.kind == "els" else "zero"
    s_sites = h * w
    keep, cls = _bank_site_masks(bank, (h, w))
    keep_j, cls_j = jnp.asarray(keep), jnp.asarray(cls)

    def get(i):
        start = jnp.minimum(i * chunk, n - chunk)
        fresh = (start + jnp.arange(chunk)) >= i * chunk
        y = jax.lax.dynamic_slice_in_dim(imgs, start, chunk, axis=0).astype(dtype)
        lw = jax.lax.dynamic_slice_in_dim(logw, start, chunk, axis=0).astype(dtype)
        keys = _patches(y, bank.kernel, mode).reshape(chunk * s_sites, -1)
        ok = (fresh & jnp.isfinite(lw))[:, None] & keep_j[None, :]
        lm = jnp.where(ok, lw[:, None], neg).reshape(-1)
        sq = jnp.sum(keys**2, axis=1)
        c = y.shape[-1]
        aug = jnp.concatenate([keys, sq[:, None], lm[:, None]], axis=1)
        vals = keys[:, centre * c : (centre + 1) * c]
        eb = jnp.zeros((chunk * s_sites,), dtype)
        return aug, vals, eb, jnp.tile(cls_j, chunk)

    lw_max = jnp.max(jnp.where(jnp.isfinite(logw), logw, -jnp.inf)).astype(dtype)
    return -(-n // chunk), get, lw_max


def _bank_site_masks(bank: PatchBank, hw):
    """Per training site: kept (ELS 'valid' padding) and border-offset class (bbELS)."""
    h, w = hw
    s_sites = h * w
    if bank.kind == "bbels":
        return np.ones(s_sites, bool), _site_classes(bank.kernel, hw).astype(np.int32)
    keep = np.ones(s_sites, bool)
    if bank.training_padding == "valid":
        rh, rw = bank.kernel[0] // 2, bank.kernel[1] // 2
        ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        keep = ((ii >= rh) & (ii < h - rh) & (jj >= rw) & (jj < w - rw)).reshape(-1)
    return keep, np.zeros(s_sites, np.int32)


class _Sums(NamedTuple):
    z: Array  # (B, S) sum e
    m1: Array  # (B, S, C) sum e v
    m2: Array | None
    m4: Array | None
    el: Array | None  # sum e (logit + ent_bias)


def _els_sums(bank: PatchBank, x4: Array, a: Array, b2: Array, chunk: int, moments: bool):
    """ELS/bbELS posterior sums. Returns (shift (B, S), _Sums) with every sum relative to
    ``exp(shift)``: $Z = e^{\\rm shift} z$."""
    bsz, h, w, c = x4.shape
    s_sites = h * w
    dtype = x4.dtype
    neg = _neg(dtype)
    mode = "periodic" if bank.kind == "els" else "zero"
    q = _patches(x4, bank.kernel, mode)  # (B, S, P)
    lam = (a / b2)[:, None, None]
    mu = (-0.5 * a**2 / b2)[:, None, None]
    ones = jnp.ones((bsz, s_sites, 1), dtype)
    qa = jnp.concatenate([lam * q, mu * ones, ones], axis=-1)  # (B, S, P + 2)
    n_chunks, get, lm_max = _els_chunks(bank, dtype, chunk, (h, w))
    masked = bank.kind == "bbels"
    site_cls = jnp.asarray(_site_classes(bank.kernel, (h, w)) if masked else np.zeros(1, np.int32))

    def logits(i):
        aug, vals, eb, cls = get(i)
        ell = jnp.einsum("bsp,kp->bsk", qa, aug)
        if masked:
            ell = jnp.where((site_cls[:, None] == cls[None, :])[None], ell, neg)
        return ell, vals, eb

    # --- one pass with a constant per-site shift --------------------------------------------
    item = jnp.dtype(dtype).itemsize
    big_g, big_t = _SHIFT_G.get(item, 30.0), _SHIFT_T.get(item, 50.0)
    upper = 0.5 * jnp.sum(q * q, axis=-1) / b2[:, None] + lm_max  # >= every logit
    ell0, _, _ = logits(0)
    m_first = jnp.max(ell0, axis=-1)  # <= the largest logit of the site
    shift = jnp.maximum(upper - big_g, m_first)
    # bbELS: a chunk may hold no candidate of a site's border class, so M_1 certifies nothing.
    # Certified per site, so that which algorithm serves a site never depends on the other
    # rows of the batch (batch-size independence).
    certified = m_first >= upper - big_g - big_t  # (B, S)

    def fast(_):
        # Per chunk: GEMM -> exp -> weighted sums over the chunk with a small weight matrix
        # W (R, k), rows [1, v_c] (+ [v_c^2, v_c^4, ent_bias] for the moments). On CPU the sums
        # are written as a multiply-reduce with queries flattened to 2-D: XLA:CPU then compiles
        # GEMM, exp and the reduction into one kernel and the (B*S, k) logits never go to
        # memory (the headline ELS call: 300-340 ms instead of 450-500); elsewhere a 2nd GEMM.
        qa2 = qa.reshape(bsz * s_sites, -1)
        shift2 = shift.reshape(-1)
        n_rows = 1 + c + (2 * c + 2 if moments else 0)
        as_dot = _sums_as_dot()

        def body(acc, i):
            aug, vals, eb, _ = get(i)
            ell = qa2 @ aug.T  # (B*S, k)
            e = jnp.exp(ell - shift2[:, None])
            rows = [jnp.ones_like(eb), *vals.T]
            if moments:
                rows += [*(vals**2).T, *(vals**4).T, eb]
            wts = jnp.stack(rows, axis=0)  # (R', k)
            out = e @ wts.T if as_dot else jnp.sum(e[:, None, :] * wts[None], axis=-1)
            if moments:  # sum e * logit (entropy); ent_bias is the row above
                out = jnp.concatenate([out, jnp.sum(e * ell, axis=-1, keepdims=True)], axis=1)
            return acc + out, None  # (B*S, R)

        r, _ = jax.lax.scan(body, jnp.zeros((bsz * s_sites, n_rows), dtype), jnp.arange(n_chunks))
        r = r.reshape(bsz, s_sites, n_rows)
        z, m1 = r[..., 0], r[..., 1 : 1 + c]
        if not moments:
            return shift, _Sums(z, m1, None, None, None)
        m2, m4 = r[..., 1 + c : 1 + 2 * c], r[..., 1 + 2 * c : 1 + 3 * c]
        return shift, _Sums(z, m1, m2, m4, r[..., -2] + r[..., -1])

    def online(_):
        def body(acc, i):
            ell, vals, eb = logits(i)
            logit = jnp.where(ell > 0.5 * neg, ell, -jnp.inf)
            return _acc_update(acc, logit, ell + eb[None, None, :], vals, False), None

        acc, _ = jax.lax.scan(body, _acc_init(bsz, s_sites, c, dtype), jnp.arange(n_chunks))
        sums = _Sums(
            acc.z,
            acc.m1,
            acc.m2 if moments else None,
            acc.m4 if moments else None,
            acc.el if moments else None,
        )
        return acc.mx, sums

    if masked:
        return online(None)
    fast_out = fast(None)

    def fallback(_):  # the online pass for the sites the one-pass shift does not certify
        online_out = online(None)
        pick = lambda f, o: jnp.where(
            certified.reshape(certified.shape + (1,) * (f.ndim - 2)), f, o
        )
        return jax.tree.map(pick, fast_out, online_out)

    return jax.lax.cond(jnp.all(certified), lambda _: fast_out, fallback, None)


# ----------------------------------------------------------------------------------------------
# ES: whole-lattice periodic window, logits of all circular shifts by FFT
# ----------------------------------------------------------------------------------------------


def _es_sums(bank: PatchBank, x4: Array, a: Array, b2: Array, chunk: int):
    r"""The equivariant whole-image score (ES): candidates $(n, s)$ = image $n$ shifted by $s$.

    Logit $\lambda\,(x\star y_n)(s)-\frac{a^2}{2b^2}\|y_n\|^2+\ln\mu_n$ with the circular
    cross-correlation $(x\star y)(s)=\sum_i x_i y_{i+s}$; the posterior sums
    $\sum_{n,s}w_{ns}\,y_n(i+s)^p$ are correlations again. FFTs over ``chunk`` images at a
    time, online log-sum-exp over chunks. The posterior is the same at every site."""
    bsz, h, w, c = x4.shape
    dtype = x4.dtype
    imgs, logw = bank.keys, bank.log_mult
    n = imgs.shape[0]
    n_chunks = -(-n // chunk)
    ax = (1, 2)
    xf = jnp.conj(jnp.fft.fft2(x4, axes=ax))  # (B, H, W, C)
    lam = (a / b2)[:, None, None, None]
    mu = (-0.5 * a**2 / b2)[:, None, None, None]

    def body(acc, i):
        start = jnp.minimum(i * chunk, n - chunk)
        fresh = (start + jnp.arange(chunk)) >= i * chunk
        y = jax.lax.dynamic_slice_in_dim(imgs, start, chunk, axis=0).astype(dtype)
        lw = jax.lax.dynamic_slice_in_dim(logw, start, chunk, axis=0).astype(dtype)
        lw = jnp.where(fresh, lw, -jnp.inf)
        yf = jnp.fft.fft2(y, axes=ax)  # (k, H, W, C)
        corr = jnp.fft.ifft2(jnp.einsum("bhwc,khwc->bkhw", xf, yf), axes=(2, 3)).real
        sq = jnp.sum(y**2, axis=(1, 2, 3))
        logit = lam * corr + mu * sq[None, :, None, None] + lw[None, :, None, None]
        mx = jnp.maximum(acc.mx, jnp.max(logit, axis=(1, 2, 3)))
        sh = jnp.where(jnp.isfinite(mx), mx, 0.0)
        scale = jnp.exp(acc.mx - sh)
        e = jnp.exp(logit - sh[:, None, None, None])  # (B, k, H, W)
        ef = jnp.conj(jnp.fft.fft2(e, axes=(2, 3)))

        def mom(p):  # sum_{n,s} e[b,n,s] y_n(i+s)^p  ->  (B, H, W, C)
            vf = jnp.fft.fft2(y if p == 1 else y**p, axes=ax)
            return jnp.fft.ifft2(jnp.einsum("bkhw,khwc->bhwc", ef, vf), axes=ax).real

        ent = jnp.where(jnp.isfinite(logit), logit, 0.0)
        sc, sc4 = scale[:, None], scale[:, None, None, None]
        new = _Acc(
            mx,
            acc.z * sc + jnp.sum(e, axis=(1, 2, 3))[:, None],
            acc.m1 * sc4 + mom(1),
            acc.m2 * sc4 + mom(2),
            acc.m4 * sc4 + mom(4),
            acc.el * sc + jnp.sum(e * ent, axis=(1, 2, 3))[:, None],
        )
        return new, None

    zeros = jnp.zeros((bsz, h, w, c), dtype)
    init = _Acc(
        jnp.full((bsz,), -jnp.inf, dtype),
        jnp.zeros((bsz, 1), dtype),
        zeros,
        zeros,
        zeros,
        jnp.zeros((bsz, 1), dtype),
    )
    acc, _ = jax.lax.scan(body, init, jnp.arange(n_chunks))
    s_sites = h * w
    rep = lambda v: jnp.broadcast_to(v, (bsz, s_sites))
    flat = lambda m: m.reshape(bsz, s_sites, c)
    sums = _Sums(rep(acc.z), flat(acc.m1), flat(acc.m2), flat(acc.m4), rep(acc.el))
    return rep(acc.mx[:, None]), sums


# ----------------------------------------------------------------------------------------------
# public entry points
# ----------------------------------------------------------------------------------------------


class PatchPosterior(NamedTuple):
    r"""Per-site posterior statistics of the centre pixel $\phi(0)$ under $w_i$.

    - `mean`: $m_i=\langle\phi(0)\rangle$ (the denoiser), shaped like ``x``.
    - `second`, `fourth`: $\langle\phi(0)^2\rangle$, $\langle\phi(0)^4\rangle$, like ``x``.
    - `variance`: $\langle\phi(0)^2\rangle-m_i^2$, like ``x``.
    - `binder`: $1-\langle\phi(0)^4\rangle/(3\langle\phi(0)^2\rangle^2)$, like ``x``
      (NaN where $\langle\phi(0)^2\rangle=0$).
    - `entropy`: Shannon entropy $-\sum_\phi w_i(\phi)\ln w_i(\phi)$ of the posterior over
      the (unmerged) training candidates, shape ``(*batch, *lattice)`` (one per site).
    - `score`: $(a_t m_i-x_i)/b_t^2$, like ``x``.
    """

    mean: Array
    second: Array
    fourth: Array
    variance: Array
    binder: Array
    entropy: Array
    score: Array


def _resolve_bank(images, window, equivariant, boundary, lattice_ndim):
    """The :class:`PatchBank` of a machine, a bank (options checked against it) or images."""
    if isinstance(images, AbstractPatchMachine):
        images = images.bank
    if isinstance(images, PatchBank):
        given_bank = images
        for name, given, have in (
            ("equivariant", equivariant, given_bank.equivariant),
            ("boundary", boundary, given_bank.boundary),
            ("lattice_ndim", lattice_ndim, given_bank.lattice_ndim),
        ):
            if given is not None and given != have:
                raise ValueError(
                    f"{name}={given!r} disagrees with the PatchBank's {name}={have!r}; omit it "
                    "or rebuild the bank with gltheory.patch.bank(...)."
                )
        if window != "bank" and window != given_bank.window:
            raise ValueError(
                f"window={window!r} disagrees with the PatchBank's window={given_bank.window!r}."
            )
        return given_bank
    if isinstance(window, str):
        raise ValueError(
            "window is required when images is not a PatchBank or a patch machine (IS, ES, LS, "
            "ELS, BoundaryELS)."
        )
    return bank(
        images,
        window=window,
        equivariant=True if equivariant is None else equivariant,
        boundary="periodic" if boundary is None else boundary,
        lattice_ndim=lattice_ndim,
    )


def _prepare(
    images, process, x, t, window, equivariant, boundary, lattice_ndim, chunk_size, memory_budget
):
    check_instance(process, AbstractProcess, "process", PROCESS)
    if isinstance(images, AbstractPatchMachine):  # the machine's own streaming settings
        chunk_size = images.chunk_size if chunk_size is None else chunk_size
        memory_budget = images.memory_budget if memory_budget is None else memory_budget
    if memory_budget is None:
        memory_budget = DEFAULT_MEMORY_BUDGET
    pbank = _resolve_bank(images, window, equivariant, boundary, lattice_ndim)
    x = as_float_array(x, "x")
    ev = pbank.image_shape
    if x.ndim < len(ev) or tuple(x.shape[x.ndim - len(ev) :]) != ev:
        raise ValueError(
            f"x has shape {x.shape}, but its trailing axes must equal one training image's "
            f"shape {ev} (lattice {pbank.lattice}"
            f"{', channels last' if pbank.channels else ', no channel axis'})."
        )
    t = check_time(t, process.T, "t")
    batch_time(t, x, len(ev))  # shape check only
    chunk = _site_chunk(pbank, x.dtype, chunk_size, memory_budget)
    return pbank, process, x, t, chunk


_BLOCK_ROWS = 1024
"""Query rows (trajectory x site) per fixed-shape block of the batch (see :func:`_block_size`)."""


def _block_size(pbank: PatchBank) -> int:
    """Trajectories per block: ``x`` is processed in fixed-shape blocks of this many rows
    (:func:`gltheory.lattice.map_batch_blocks`), a number fixed by the lattice, never by the
    batch, so a trajectory's score is bitwise the same whatever the batch size."""
    return max(1, _BLOCK_ROWS // int(np.prod(pbank.lattice)))


def _site_chunk(pbank: PatchBank, dtype, chunk_size, memory_budget) -> int:
    """Candidates per chunk for one block of :func:`_block_size` trajectories (batch-free)."""
    s_sites = int(np.prod(pbank.lattice))
    c = pbank.image_shape[-1] if pbank.channels else 1
    return _chunk_for(pbank, _block_size(pbank), s_sites, c, dtype, chunk_size, memory_budget)


@eqx.filter_jit
@trusted
def _stats_jit(pbank, process, x, t, chunk, field: str | None = None):
    """All statistics (``field=None``) or one field of them; returning a single field lets
    XLA drop the unused moment and entropy sums (the score-only path is ~1.7x faster)."""
    if field in ("mean", "score"):  # only z and the first moment are accumulated
        mean, score_ = _stats(pbank, process, x, t, chunk, False)
        return mean if field == "mean" else score_
    out = _stats(pbank, process, x, t, chunk, True)
    return out if field is None else getattr(out, field)


def posterior_stats(
    images: AbstractPatchMachine | PatchBank | LatticeImages | ArrayLike,
    process: AbstractProcess,
    x: Shaped[ArrayLike, "*x"],
    t: ArrayLike,
    *,
    window: int | tuple[int, ...] | None | str = "bank",
    equivariant: bool | None = None,
    boundary: Boundary | str | None = None,
    lattice_ndim: int | None = None,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
) -> PatchPosterior:
    r"""Per-site posterior moments, entropy and score of a patch machine in one streaming pass.

    With $w_i(\phi)\propto\mu(\phi)\exp\big(\frac{a_t}{b_t^2}\langle x_{i+\Omega},\phi\rangle
    -\frac{a_t^2}{2b_t^2}\|\phi\|^2\big)$ (`docs/theory/patch.md#patch-posterior`) returns
    $\langle\phi(0)^p\rangle_{w_i}$ for $p=1,2,4$, the variance, the Binder ratio, the
    entropy and the score $s_i=(a_t m_i-x_i)/b_t^2$.

    **Arguments:**

    - `images`: a patch machine (:class:`IS`, :class:`ES`, :class:`LS`, :class:`ELS`,
      :class:`BoundaryELS`; preferred), a :class:`PatchBank` (built by :func:`bank`), a
      :class:`gltheory.LatticeImages` or an array ``(N, *lattice[, C])``.
    - `process`: the forward process ($a_t$, $b_t^2$).
    - `x`: noisy states, shape ``(*batch, *lattice[, C])`` (trailing axes = one image).
    - `t`: forward time in $(0,T]$, scalar or shaped like ``batch``.
    - `window`: odd $k$ or a tuple per lattice axis; ``None`` = whole image (IS). Required
      unless ``images`` is a machine or a bank (then it may be omitted or must match).
    - `equivariant`: ``True`` (ELS/bbELS, default) or ``False`` (LS).
    - `boundary`: ``"periodic"`` (default) or ``"zero"`` (module docstring).
    - `lattice_ndim`: 1 or 2 (default ``images.ndim - 1``, no channel axis).
    - `chunk_size`: candidates per streaming chunk (default: the machine's, else from
      ``memory_budget``); for the ES machine and streamed (non-materialised) banks, training
      images per chunk.
    - `memory_budget`: bytes allowed for one chunk's working arrays (default: the machine's,
      else :data:`DEFAULT_MEMORY_BUDGET`).

    **Returns:** a :class:`PatchPosterior`.
    """
    return _stats_jit(
        *_prepare(
            images,
            process,
            x,
            t,
            window,
            equivariant,
            boundary,
            lattice_ndim,
            chunk_size,
            memory_budget,
        )
    )


def _stats(
    pbank: PatchBank, process: AbstractProcess, x: Array, t: Array, chunk: int, moments: bool
):
    ev = pbank.image_shape
    batch = x.shape[: x.ndim - len(ev)]
    bsz = int(np.prod(batch)) if batch else 1
    tb = jnp.broadcast_to(t, batch).reshape(bsz).astype(x.dtype)

    def coefficients(t_rows):  # evaluated per block, on the block's fixed shape
        return process.a(t_rows).astype(x.dtype), process.b2(t_rows).astype(x.dtype)

    return _stats_rows(pbank, x, tb, coefficients, chunk, moments)


def _stats_rows(pbank: PatchBank, x: Array, rows, coefficients, chunk: int, moments: bool):
    """Posterior statistics of ``x`` (*batch, *image); ``rows`` is a pytree of (B,) arrays and
    ``coefficients(rows_block)`` gives $a_t$, $b_t^2$ of a block's rows.

    Everything, the coefficients included, runs on fixed-shape blocks of
    :func:`_block_size` trajectories (:func:`gltheory.lattice.map_batch_blocks`) with a chunk
    size that does not depend on the batch, so each trajectory's statistics are bitwise
    independent of the batch size."""
    ev = pbank.image_shape
    batch = x.shape[: x.ndim - len(ev)]
    bsz = int(np.prod(batch)) if batch else 1
    h, w = (1, pbank.lattice[0]) if pbank.lattice_ndim == 1 else pbank.lattice
    c = ev[-1] if pbank.channels else 1
    x4 = x.reshape(bsz, h, w, c)

    def block(args):
        xb, rb = args
        a, b2 = coefficients(rb)
        shift, acc = _posterior_sums(pbank, xb, a, b2, chunk, moments)
        z = acc.z[..., None]
        m1 = acc.m1 / z
        score_ = (a[:, None, None, None] * m1.reshape(xb.shape) - xb) / b2[:, None, None, None]
        if not moments:
            return m1, score_
        m2, m4 = acc.m2 / z, acc.m4 / z
        # H = ln Z - <logit + ent_bias>, Z = sum exp(logit) = e^{shift} z (PatchBank.ent_bias)
        entropy = jnp.log(acc.z) + shift - acc.el / acc.z
        return m1, score_, m2, m4, m2 - m1**2, 1 - m4 / (3 * m2**2), entropy

    out = map_batch_blocks(block, (x4, rows), _block_size(pbank))
    shape = x.shape
    if not moments:
        return out[0].reshape(shape), out[1].reshape(shape)
    m1, score_, m2, m4, var, binder, entropy = out
    return PatchPosterior(
        mean=m1.reshape(shape),
        second=m2.reshape(shape),
        fourth=m4.reshape(shape),
        variance=var.reshape(shape),
        binder=binder.reshape(shape),
        entropy=entropy.reshape(batch + pbank.lattice),
        score=score_.reshape(shape),
    )


def score(
    images: AbstractPatchMachine | PatchBank | LatticeImages | ArrayLike,
    process: AbstractProcess,
    x: Shaped[ArrayLike, "*x"],
    t: ArrayLike,
    *,
    window: int | tuple[int, ...] | None | str = "bank",
    equivariant: bool | None = None,
    boundary: Boundary | str | None = None,
    lattice_ndim: int | None = None,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
) -> Float[Array, "*x"]:
    r"""Patch-machine score $s_i=(a_t\langle\phi(0)\rangle_{w_i}-x_i)/b_t^2$ (`docs/theory/patch.md#machines`).

    LS, ELS, bbELS, ES or IS depending on the machine (or on ``window``/``equivariant``/
    ``boundary`` for raw images; module docstring); exact streaming log-sum-exp over candidate
    chunks (`docs/theory/patch.md#fast-patch-score`). Same arguments as :func:`posterior_stats`; returns an array shaped like
    ``x``. For a machine this is :func:`gltheory.score` (``gltheory.score(machine, process, x,
    t)``), usable as ``score_fn`` in :func:`gltheory.sample` through
    ``lambda x, t: gltheory.score(machine, process, x, t)``.
    """
    return _stats_jit(
        *_prepare(
            images,
            process,
            x,
            t,
            window,
            equivariant,
            boundary,
            lattice_ndim,
            chunk_size,
            memory_budget,
        ),
        field="score",
    )


def denoiser(
    images: AbstractPatchMachine | PatchBank | LatticeImages | ArrayLike,
    process: AbstractProcess,
    x: Shaped[ArrayLike, "*x"],
    t: ArrayLike,
    *,
    window: int | tuple[int, ...] | None | str = "bank",
    equivariant: bool | None = None,
    boundary: Boundary | str | None = None,
    lattice_ndim: int | None = None,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
) -> Float[Array, "*x"]:
    r"""Patch-machine denoiser $m_i=\langle\phi(0)\rangle_{w_i}$ (posterior mean of the centre pixel).

    Same arguments as :func:`posterior_stats`; returns an array shaped like ``x``. For a
    machine this is :func:`gltheory.denoiser`.
    """
    return _stats_jit(
        *_prepare(
            images,
            process,
            x,
            t,
            window,
            equivariant,
            boundary,
            lattice_ndim,
            chunk_size,
            memory_budget,
        ),
        field="mean",
    )


# ----------------------------------------------------------------------------------------------
# patch machines as values
# ----------------------------------------------------------------------------------------------


def _check_streaming(chunk_size, memory_budget):
    if chunk_size is not None and (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, (int, np.integer))
        or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}.")
    if (
        isinstance(memory_budget, bool)
        or not isinstance(memory_budget, (int, float))
        or memory_budget <= 0
    ):
        raise ValueError(
            f"memory_budget must be a positive number of bytes, got {memory_budget!r}."
        )
    return None if chunk_size is None else int(chunk_size), memory_budget


def _training_set(images) -> LatticeImages:
    if isinstance(images, LatticeImages):
        return images
    return LatticeImages(as_float_array(images, "images"))


class AbstractPatchMachine(AbstractData):
    r"""A patch machine as a value: its training images, its window and its :class:`PatchBank`.

    A patch machine is a dataset-like object (a subclass of :class:`gltheory.AbstractData`):
    it is accepted wherever a dataset is, so one call convention holds across the package,

    ```python
    machine = gltheory.ELS(images, window=5)
    s = gltheory.score(machine, process, x, t)            # = gltheory.patch.score(...)
    m = gltheory.denoiser(machine, process, x, t)
    sol = gltheory.sample(lambda x, t: gltheory.score(machine, process, x, t), process, key,
                          (n, *machine.event_shape), ts=ts)
    ```

    Its "posterior mean" is the per-site patch posterior mean
    $m_i=\langle\phi(0)\rangle_{w_i}$ (module docstring), computed by the same streamed code
    as :func:`score` (chunked log-sum-exp, certified constant shift, FFT for ES), with the
    machine's ``chunk_size`` and ``memory_budget``. ``mean()`` and ``covariance()`` are those
    of the training images. The ideal machine :class:`IS` is the posterior of a data law
    (the training set) and has ``log_prob``, ``posterior_cov`` and ``sample``; :class:`ES`
    has ``log_prob`` (of the shift-augmented training set, one streamed pass); the others
    raise a ``ValueError`` there (the score of LS, ELS and bbELS is not the gradient of a
    log-density; the ES covariance would need $d^2$ correlations).

    Machines are equinox modules: pass them through ``jit``/``vmap`` as arguments; the bank
    is built once, at construction (it needs concrete images to merge duplicates).
    """

    bank: eqx.AbstractVar[PatchBank]
    training: eqx.AbstractVar[LatticeImages]
    chunk_size: eqx.AbstractVar[int | None]
    memory_budget: eqx.AbstractVar[int]

    @property
    def window(self) -> int | tuple[int, ...] | None:
        """The window the machine was built with (``None``: the whole lattice)."""
        return self.bank.window

    @property
    def kind(self) -> str:
        """The algorithm that runs: ``"ls"`` (LS and IS), ``"els"``, ``"bbels"`` or ``"es"``."""
        return self.bank.kind

    def _unavailable(self, what: str):
        raise ValueError(
            f"{what} is not available for the {type(self).__name__} patch machine: its score "
            "is a per-site patch posterior, not the posterior of a data law with a computed "
            "normaliser (IS has log_prob, posterior_cov and sample, ES has log_prob; use "
            "gltheory.score / gltheory.denoiser, or gltheory.spectral on its score)."
        )

    def sample(self, key, n):
        self._unavailable("sample (a draw from its data law)")

    def mean(self):
        return self.training.mean()

    def covariance(self):
        return self.training.covariance()

    def log_marginal(self, x, a, b2):
        self._unavailable("log_prob")

    def posterior_cov(self, x, a, b2):
        self._unavailable("posterior_cov")

    def _rows(self, x, a, b2):
        """x (*batch, d), a and b2 () or (*batch, 1) -> (batch, bsz, a (B,), b2 (B,), chunk)."""
        batch = x.shape[:-1]
        bsz = int(np.prod(batch)) if batch else 1

        def per_row(c):
            c = jnp.asarray(c)
            c = c[..., 0] if c.ndim > 0 else c
            # computed once as it is given (a scalar stays a scalar), never fused into a
            # batch-shaped loop: its bits do not depend on the batch size
            c = jax.lax.optimization_barrier(c.astype(x.dtype))
            return jnp.broadcast_to(c, batch).reshape(bsz)

        chunk = _site_chunk(self.bank, x.dtype, self.chunk_size, self.memory_budget)
        return batch, bsz, per_row(a), per_row(b2), chunk

    def posterior_mean(self, x, a, b2):
        batch, _, a_rows, b2_rows, chunk = self._rows(x, a, b2)
        mean, _ = _stats_rows(
            self.bank,
            x.reshape(batch + self.event_shape),
            (a_rows, b2_rows),
            lambda ab: ab,
            chunk,
            False,
        )
        return mean.reshape(x.shape)

    def posterior_stats(self, process: AbstractProcess, x: ArrayLike, t: ArrayLike):
        """:func:`posterior_stats` of this machine (moments, Binder ratio, entropy, score)."""
        return posterior_stats(self, process, x, t)


def _init_machine(machine, images, window, lattice_ndim, chunk_size, memory_budget, **kw):
    chunk_size, memory_budget = _check_streaming(chunk_size, memory_budget)
    pbank = bank(images, window=window, lattice_ndim=lattice_ndim, **kw)
    machine.bank = pbank
    machine.training = _training_set(images)
    machine.chunk_size = chunk_size
    machine.memory_budget = memory_budget
    machine.event_shape = pbank.image_shape


class IS(AbstractPatchMachine):
    r"""The ideal (memorising) score: the window covers the whole lattice, no equivariance.

    The exact score of the training set as a data law, identical to
    ``gltheory.score(LatticeImages(images), ...)`` (Kamb & Ganguli's IS), computed by the LS
    code with a window of $2n-1$ along each axis. As the one machine that is the posterior of
    a data law it also has ``log_prob``, ``posterior_cov`` and ``sample`` (of the training set).

    **Arguments:**

    - `images`: the training images, a :class:`gltheory.LatticeImages` (its weights are
      used) or an array ``(N, *lattice[, C])``.
    - `lattice_ndim`: 1 or 2 (default ``images.ndim - 1``: no channel axis).
    - `chunk_size`: candidates (or training images) per streaming chunk; default from
      ``memory_budget``.
    - `memory_budget`: bytes allowed for one chunk's working arrays.
    """

    bank: PatchBank
    training: LatticeImages
    chunk_size: int | None = eqx.field(static=True)
    memory_budget: int = eqx.field(static=True)
    event_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        images: LatticeImages | ArrayLike,
        *,
        lattice_ndim: int | None = None,
        chunk_size: int | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ):
        _init_machine(
            self, images, None, lattice_ndim, chunk_size, memory_budget, equivariant=False
        )

    def sample(self, key, n):
        return self.training.sample(key, n)

    def log_marginal(self, x, a, b2):
        return self.training.log_marginal(x, a, b2)

    def posterior_cov(self, x, a, b2):
        return self.training.posterior_cov(x, a, b2)


class ES(AbstractPatchMachine):
    r"""The equivariant ideal score: whole-lattice periodic window, all circular shifts.

    The candidates are every circular shift of every training image (Kamb & Ganguli's ES),
    the whole-image limit of :class:`ELS` with circular padding; logits of all shifts are
    FFT cross-correlations, $O(NL\log L)$.

    **Arguments:**

    - `images`: the training images, a :class:`gltheory.LatticeImages` (its weights are
      used) or an array ``(N, *lattice[, C])``.
    - `lattice_ndim`: 1 or 2 (default ``images.ndim - 1``: no channel axis).
    - `chunk_size`: candidates (or training images) per streaming chunk; default from
      ``memory_budget``.
    - `memory_budget`: bytes allowed for one chunk's working arrays.
    """

    bank: PatchBank
    training: LatticeImages
    chunk_size: int | None = eqx.field(static=True)
    memory_budget: int = eqx.field(static=True)
    event_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        images: LatticeImages | ArrayLike,
        *,
        lattice_ndim: int | None = None,
        chunk_size: int | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ):
        _init_machine(
            self,
            images,
            None,
            lattice_ndim,
            chunk_size,
            memory_budget,
            equivariant=True,
            boundary="periodic",
        )

    def log_marginal(self, x, a, b2):
        r"""$\ln p_t(x)$ of the shift-augmented training set (image $n$ with weight $\mu_n$,
        shifted by a uniform circular shift $s$): one streamed FFT pass, as for the score.

        $\ln p_t(x)=\operatorname{LSE}_{n,s}\big(\ln\mu_n+\tfrac{a}{b^2}(x\star y_n)(s)
        -\tfrac{a^2}{2b^2}\|y_n\|^2\big)-\ln S-\tfrac{\|x\|^2}{2b^2}-\tfrac d2\ln(2\pi b^2)$,
        $S$ the number of sites."""
        batch, bsz, a_rows, b2_rows, chunk = self._rows(x, a, b2)
        pb = self.bank
        h, w = (1, pb.lattice[0]) if pb.lattice_ndim == 1 else pb.lattice
        x4 = x.reshape(bsz, h, w, -1)
        d = x.shape[-1]

        def block(args):  # fixed-shape blocks: batch-size independent (see _stats_rows)
            xb, ab, b2b = args
            shift, sums = _es_sums(pb, xb, ab, b2b, chunk)
            lse = shift[:, 0] + jnp.log(sums.z[:, 0])
            quad = 0.5 * jnp.sum(xb**2, axis=(1, 2, 3)) / b2b
            return lse - math.log(h * w) - quad - 0.5 * d * (math.log(2 * math.pi) + jnp.log(b2b))

        out = map_batch_blocks(block, (x4, a_rows, b2_rows), _block_size(pb))
        return out.reshape(batch)


class LS(AbstractPatchMachine):
    r"""The local score: at site $i$ the candidates are the $N$ training patches at site $i$.

    Zero padding (the window is cropped at the border); box filters with cumulative sums,
    $O(NL)$ whatever the window. With $k\ge2H-1$ it equals :class:`IS`.

    **Arguments:**

    - `images`: the training images, a :class:`gltheory.LatticeImages` (its weights are
      used) or an array ``(N, *lattice[, C])``.
    - `window`: odd $k$ (a $k$ or $k\times k$ window) or one odd size per lattice axis.
    - `lattice_ndim`: 1 or 2 (default ``images.ndim - 1``: no channel axis).
    - `chunk_size`: candidates (or training images) per streaming chunk; default from
      ``memory_budget``.
    - `memory_budget`: bytes allowed for one chunk's working arrays.
    """

    bank: PatchBank
    training: LatticeImages
    chunk_size: int | None = eqx.field(static=True)
    memory_budget: int = eqx.field(static=True)
    event_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        images: LatticeImages | ArrayLike,
        window: int | tuple[int, ...],
        *,
        lattice_ndim: int | None = None,
        chunk_size: int | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ):
        _init_machine(
            self, images, window, lattice_ndim, chunk_size, memory_budget, equivariant=False
        )


class ELS(AbstractPatchMachine):
    r"""The equivariant local score with periodic boundaries.

    $x$ is circularly padded and the candidates are all patches of all training images at
    all positions (circular training padding by default); identical candidates are merged
    once. One GEMM per chunk with a certified constant shift (module docstring). A window
    equal to the lattice size on every axis gives :class:`ES`.

    **Arguments:**

    - `images`: the training images, a :class:`gltheory.LatticeImages` (its weights are
      used) or an array ``(N, *lattice[, C])``.
    - `window`: odd $k\le$ the lattice size, or one odd size per lattice axis.
    - `lattice_ndim`: 1 or 2 (default ``images.ndim - 1``: no channel axis).
    - `chunk_size`: candidates (or training images) per streaming chunk; default from
      ``memory_budget``.
    - `memory_budget`: bytes allowed for one chunk's working arrays.
    - `merge`: merge identical candidate patches (exact; default ``True``).
    - `training_padding`: ``"circular"`` (default) or ``"valid"`` (only the patches inside
      each image, as in Kamb & Ganguli's code).
    - `materialize`: store every candidate patch (``True``), extract each chunk's patches in
      the loop (``False``), or decide by :data:`MATERIALIZE_MAX_BYTES` (``None``).
    """

    bank: PatchBank
    training: LatticeImages
    chunk_size: int | None = eqx.field(static=True)
    memory_budget: int = eqx.field(static=True)
    event_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        images: LatticeImages | ArrayLike,
        window: int | tuple[int, ...],
        *,
        lattice_ndim: int | None = None,
        merge: bool = True,
        training_padding: Literal["circular", "valid"] | str = "circular",
        materialize: bool | None | Any = None,
        chunk_size: int | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ):
        _init_machine(
            self,
            images,
            window,
            lattice_ndim,
            chunk_size,
            memory_budget,
            equivariant=True,
            boundary="periodic",
            merge=merge,
            training_padding=training_padding,
            materialize=materialize,
        )


class BoundaryELS(AbstractPatchMachine):
    r"""The boundary-broken equivariant local score (bbELS): ELS with zero padding.

    $x$ and the training images are zero padded; a site in the $k//2$-wide border bands only
    uses training patches taken at the same border offset, interior sites all interior
    patches. If the window is at least as large as the lattice along an axis it is
    :class:`LS`.

    **Arguments:**

    - `images`: the training images, a :class:`gltheory.LatticeImages` (its weights are
      used) or an array ``(N, *lattice[, C])``.
    - `window`: odd $k$ or one odd size per lattice axis.
    - `lattice_ndim`: 1 or 2 (default ``images.ndim - 1``: no channel axis).
    - `chunk_size`: candidates (or training images) per streaming chunk; default from
      ``memory_budget``.
    - `memory_budget`: bytes allowed for one chunk's working arrays.
    - `merge`, `materialize`: as in :class:`ELS`.
    """

    bank: PatchBank
    training: LatticeImages
    chunk_size: int | None = eqx.field(static=True)
    memory_budget: int = eqx.field(static=True)
    event_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        images: LatticeImages | ArrayLike,
        window: int | tuple[int, ...],
        *,
        lattice_ndim: int | None = None,
        merge: bool = True,
        materialize: bool | None | Any = None,
        chunk_size: int | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ):
        _init_machine(
            self,
            images,
            window,
            lattice_ndim,
            chunk_size,
            memory_budget,
            equivariant=True,
            boundary="zero",
            merge=merge,
            materialize=materialize,
        )
