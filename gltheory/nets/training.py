r"""Training denoiser networks by denoising score matching (equinox + optax), and their losses.

Training minimises, with optax (AdamW, warm-up + cosine schedule, global-norm clipping, EMA of
the weights),
$$\mathcal L(\theta)=\mathbb E_{\lambda\sim U[\lambda_{\min},\lambda_{\max}]}\,
\mathbb E_{y,z}\;w(\lambda)\,\tfrac1d\|D_\theta(a y+bz,t_\lambda)-y\|^2,\qquad
w=1+{\rm SNR}\ (\text{default}),$$
on lattice datasets (:mod:`gltheory.data`) or scikit-learn's 8x8 digits
(:func:`gltheory.nets.digits_images`, optional extra ``digits``). The randomness of step $n$
is ``fold_in(PRNGKey(seed), n)``, so a run resumed from an (atomically written) checkpoint is
bit-identical to an uninterrupted one. A checkpoint records the configuration and SHA-256
hashes of the training data and the process (resuming another run raises unless asked for)
and carries a SHA-256 checksum of its contents (a changed bit raises on loading). :func:`denoising_loss` estimates the same objective
with fixed quadrature in $\lambda$ for any denoiser; :func:`linear_denoiser_loss` is the exact
loss of the best linear (Wiener) denoiser, the baseline a trained network must beat.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, Real

from .._checks import PROCESS, check_instance, check_positive_int
from .._io import atomic_write, to_jsonable
from ..data import LatticeImages
from ..processes import AbstractProcess
from .datasets import data_moments, images_and_weights
from .models import AbstractDenoiserNet, Parametrisation, ScoreNetwork

__all__ = [
    "Weighting",
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
]

Weighting = Literal["snr_plus_one", "uniform", "snr"]


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

    Every field is checked at construction (``ValueError`` naming it and its allowed range):
    integers ``n_steps, batch_size, chunk >= 1`` and ``warmup_steps, seed >= 0``; finite
    ``learning_rate > 0``, ``sigma_data > 0``, ``weight_decay >= 0``; ``end_lr_factor`` in
    $[0,1]$, ``ema_decay`` in $[0,1)$; ``clip_norm > 0`` (``inf``: no clipping); finite
    ``log_snr_min < log_snr_max``; the two strings among their values.
    """

    n_steps: int = 1000
    batch_size: int = 64
    learning_rate: float | int = 3e-3
    warmup_steps: int = 50
    end_lr_factor: float | int = 0.05
    weight_decay: float | int = 1e-4
    clip_norm: float | int = 1.0
    ema_decay: float | int = 0.995
    log_snr_min: float | int = -6.0
    log_snr_max: float | int = 8.0
    weighting: Weighting | str = "snr_plus_one"
    parametrisation: Parametrisation | str = "denoiser"
    sigma_data: float | int = 1.0
    chunk: int = 50
    seed: int = 0

    def __post_init__(self):
        for name in ("n_steps", "batch_size", "chunk"):
            check_positive_int(getattr(self, name), f"TrainConfig.{name}")
        check_positive_int(self.warmup_steps, "TrainConfig.warmup_steps", 0)
        check_positive_int(self.seed, "TrainConfig.seed", 0)
        for name, allowed, ok in (
            ("learning_rate", "a finite number > 0", lambda v: math.isfinite(v) and v > 0),
            ("end_lr_factor", "a number in [0, 1]", lambda v: 0 <= v <= 1),
            ("weight_decay", "a finite number >= 0", lambda v: math.isfinite(v) and v >= 0),
            ("clip_norm", "a number > 0 (inf: no clipping)", lambda v: v > 0),
            ("ema_decay", "a number in [0, 1)", lambda v: 0 <= v < 1),
            ("log_snr_min", "a finite number", math.isfinite),
            ("log_snr_max", "a finite number", math.isfinite),
            ("sigma_data", "a finite number > 0", lambda v: math.isfinite(v) and v > 0),
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float | np.integer | np.floating)
                or not ok(float(value))
            ):
                raise ValueError(f"TrainConfig.{name} must be {allowed}, got {value!r}.")
        if not self.log_snr_min < self.log_snr_max:
            raise ValueError(
                "TrainConfig needs log_snr_min < log_snr_max, got "
                f"log_snr_min={self.log_snr_min}, log_snr_max={self.log_snr_max}."
            )
        if self.weighting not in ("snr_plus_one", "uniform", "snr"):
            raise ValueError(
                "TrainConfig.weighting must be 'snr_plus_one', 'uniform' or 'snr', got "
                f"{self.weighting!r}."
            )
        if self.parametrisation not in ("edm", "denoiser", "epsilon"):
            raise ValueError(
                "TrainConfig.parametrisation must be 'edm', 'denoiser' or 'epsilon', got "
                f"{self.parametrisation!r}."
            )


class TrainState(eqx.Module):
    """Everything a run needs to continue: weights, EMA weights, optimiser state, step, losses."""

    net: AbstractDenoiserNet
    ema: AbstractDenoiserNet
    opt_state: Any
    step: Int[Array, ""]
    losses: Float[Array, " n_steps"]


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
    if weighting not in ("snr_plus_one", "uniform", "snr"):
        raise ValueError(
            f"weighting must be 'snr_plus_one', 'uniform' or 'snr', got {weighting!r}."
        )
    snr = process.snr(t)
    if weighting == "snr_plus_one":
        return 1 + snr
    if weighting == "snr":
        return snr
    return jnp.ones_like(snr)


def dsm_loss(
    model: ScoreNetwork,
    y: Float[Array, " b *lattice"],
    t: Float[Array, " b"],
    z: Float[Array, " b *lattice"],
    *,
    weighting: Weighting | str = "snr_plus_one",
) -> Float[Array, ""]:
    r"""Denoising score-matching loss $\frac1B\sum_n w(t_n)\frac1d\|D(a_ny_n+b_nz_n,t_n)-y_n\|^2$.

    ``y``, ``z``: shape ``(B, *lattice)``; ``t``: shape ``(B,)``. Minimising it over all
    functions gives the exact denoiser $\mathbb E[y\mid x_t]$ (Tweedie's formula (Efron, JASA 2011)), hence the score.
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


_MAGIC = b"GLTHEORY-CHECKPOINT 1\n"
_CONFIG_IGNORED = ("chunk",)  # how a run is cut into jitted calls: it does not change the result


def _sha256(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.asarray(a)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _process_sha256(process: AbstractProcess) -> str:
    leaves, treedef = jax.tree_util.tree_flatten(process)
    h = hashlib.sha256(f"{type(process).__qualname__}:{treedef}".encode())
    for leaf in leaves:
        h.update(_sha256(np.asarray(leaf, np.float64)).encode())
    return h.hexdigest()


def _run_record(config, images, process, state: TrainState) -> dict[str, Any]:
    """What a checkpoint records about the run that wrote it (JSON values)."""
    record: dict[str, Any] = {"config": None, "data_sha256": None, "process_sha256": None}
    if config is not None:
        check_instance(config, TrainConfig, "config", "a TrainConfig")
        record["config"] = to_jsonable(dataclasses.asdict(config))
    if images is not None:
        y, w = images_and_weights(images)
        dtype = state.losses.dtype  # the dtype the run trains in
        record["data_sha256"] = _sha256(y.astype(dtype), w.astype(dtype))
    if process is not None:
        check_instance(process, AbstractProcess, "process", PROCESS)
        record["process_sha256"] = _process_sha256(process)
    return record


def save_checkpoint(
    path: str | os.PathLike,
    state: TrainState,
    *,
    config: TrainConfig | None = None,
    images: LatticeImages | Real[ArrayLike, " n *lattice"] | None = None,
    process: AbstractProcess | None = None,
) -> Path:
    r"""Write ``state`` atomically, with a record of the run and a SHA-256 checksum.

    The file is a header (the line ``GLTHEORY-CHECKPOINT 1``, the line ``sha256:<hex>``, one
    line of JSON recording ``config``, a SHA-256 of the training images and weights and one of
    the process) followed by ``eqx.tree_serialise_leaves`` of ``state``; the checksum covers
    everything after its own line, so :func:`load_checkpoint` detects any changed bit. The
    write goes through a temporary file and ``os.replace`` (a reader never sees a partial
    file; the temporary files of killed writes are removed by the next write).

    **Arguments:**

    - `path`: destination file; `state`: a :class:`TrainState`.
    - `config`, `images`, `process`: the run's settings, training set and forward process,
      recorded so that resuming with different ones is refused (:func:`load_checkpoint`,
      :func:`train`); ``None`` records nothing for that item.

    **Returns:** the destination as a :class:`pathlib.Path`.
    """
    check_instance(state, TrainState, "state", "a TrainState")
    return _write_checkpoint(path, state, _run_record(config, images, process, state))


def _write_checkpoint(path, state: TrainState, record: dict[str, Any]) -> Path:
    record = dict(record)
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, state)
    record["payload_bytes"] = buf.tell()
    body = json.dumps(record, sort_keys=True, allow_nan=False).encode() + b"\n" + buf.getvalue()
    blob = _MAGIC + b"sha256:" + hashlib.sha256(body).hexdigest().encode() + b"\n" + body
    return atomic_write(path, lambda f: f.write(blob))


def _read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], bytes]:
    """The verified record and payload of a checkpoint file (``ValueError`` naming the file)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {p}.")
    blob = p.read_bytes()
    if not blob:
        raise ValueError(f"checkpoint {p} is empty (0 bytes): not a gltheory checkpoint.")
    if not blob.startswith(_MAGIC):
        what = (
            f"a checkpoint format other than {_MAGIC.strip().decode()!r}"
            if blob.startswith(b"GLTHEORY-CHECKPOINT")
            else "not a gltheory checkpoint (or its header is corrupted; files written before "
            "checkpoints carried a checksum cannot be read)"
        )
        raise ValueError(f"checkpoint {p} is {what}.")
    rest = blob[len(_MAGIC) :]
    line, sep, body = rest.partition(b"\n")
    digest = line[len(b"sha256:") :]
    if not (sep and line.startswith(b"sha256:") and len(digest) == 64):
        raise ValueError(
            f"checkpoint {p} is truncated or its header is corrupted (no sha256 line)."
        )
    meta, sep, payload = body.partition(b"\n")
    try:
        record = json.loads(meta) if sep else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        record = None
    expected = record.get("payload_bytes") if isinstance(record, dict) else None
    if isinstance(expected, int) and len(payload) < expected:
        raise ValueError(
            f"checkpoint {p} is truncated: {len(payload)} of {expected} data bytes "
            "(an interrupted copy?)."
        )
    if hashlib.sha256(body).hexdigest().encode() != digest:
        raise ValueError(
            f"checkpoint {p} is corrupted: its SHA-256 checksum does not match its contents."
        )
    if not isinstance(record, dict) or not isinstance(expected, int):
        raise ValueError(f"checkpoint {p} has a corrupted header (its JSON record).")
    return record, payload


def _record_differences(record, current) -> list[str]:
    diffs = []
    if current["config"] is not None:
        old = record.get("config")
        if old is None:
            diffs.append("the checkpoint records no training configuration")
        else:
            new = json.loads(json.dumps(current["config"]))
            for name in sorted(set(old) | set(new)):
                if name not in _CONFIG_IGNORED and old.get(name) != new.get(name):
                    diffs.append(
                        f"config.{name} (checkpoint {old.get(name)!r}, now {new.get(name)!r})"
                    )
    for key, what in (("data_sha256", "training images"), ("process_sha256", "process")):
        if current[key] is not None and record.get(key) != current[key]:
            old = record.get(key)
            diffs.append(
                f"the {what} (SHA-256 {old[:12] if old else 'not recorded'} in the checkpoint, "
                f"{current[key][:12]} now)"
            )
    return diffs


def load_checkpoint(
    path: str | os.PathLike,
    like: TrainState,
    *,
    config: TrainConfig | None = None,
    images: LatticeImages | Real[ArrayLike, " n *lattice"] | None = None,
    process: AbstractProcess | None = None,
    allow_config_change: bool = False,
) -> TrainState:
    """Read a checkpoint of :func:`save_checkpoint` into the structure of ``like``.

    The checksum is verified first; an empty, truncated, corrupted or foreign file raises
    ``ValueError`` naming the file (a missing one ``FileNotFoundError``).

    **Arguments:**

    - `path`: the checkpoint file.
    - `like`: a :class:`TrainState` of the same network and configuration (e.g.
      :func:`init_train_state`'s output): the template of the structure, shapes and dtypes
      (required; a checkpoint does not store the network's code).
    - `config`, `images`, `process`: when given, compared with what the checkpoint records
      (the configuration field by field, except ``chunk``; the images and the process by
      SHA-256); a difference raises ``ValueError`` naming it unless `allow_config_change`.
    - `allow_config_change`: accept a checkpoint of a different configuration, data or process.

    **Returns:** the :class:`TrainState` stored in the file.
    """
    check_instance(
        like, TrainState, "like", "a TrainState template (e.g. init_train_state(net, config))"
    )
    if not isinstance(allow_config_change, bool):
        raise ValueError(f"allow_config_change must be True or False, got {allow_config_change!r}.")
    current = _run_record(config, images, process, like)
    return _load_checkpoint(path, like, current, allow_config_change)


def _load_checkpoint(path, like: TrainState, current, allow_config_change: bool) -> TrainState:
    record, payload = _read_checkpoint(path)
    diffs = _record_differences(record, current)
    if diffs and not allow_config_change:
        raise ValueError(
            f"checkpoint {path} was written by a different run: {'; '.join(diffs)}. Resume with "
            "the same settings, use another checkpoint file, or pass allow_config_change=True."
        )
    misfit = f"checkpoint {path} does not fit `like` (a different network or n_steps?)"
    buf = io.BytesIO(payload)
    try:
        state = eqx.tree_deserialise_leaves(buf, like)
    except Exception as err:  # noqa: BLE001 - any mismatch of the structure
        raise ValueError(f"{misfit}: {type(err).__name__}: {err}") from err
    if buf.tell() != len(payload):
        raise ValueError(f"{misfit}: it holds more leaves than `like`.")
    stored = jax.tree_util.tree_leaves_with_path(eqx.filter(state, eqx.is_array))
    wanted = jax.tree_util.tree_leaves(eqx.filter(like, eqx.is_array))
    for (where, a), b in zip(stored, wanted, strict=True):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ValueError(
                f"{misfit}: leaf {jax.tree_util.keystr(where)} is {a.dtype}{list(a.shape)} in "
                f"the file, {b.dtype}{list(b.shape)} in `like`."
            )
    return state


def train(
    net: AbstractDenoiserNet,
    images: LatticeImages | Real[ArrayLike, " n *lattice"],
    process: AbstractProcess,
    config: TrainConfig = TrainConfig(),
    *,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | np.integer | None = None,
    resume: bool = True,
    stop_after: int | np.integer | None = None,
    allow_config_change: bool = False,
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
      from its step (bit-identical to an uninterrupted run). The checkpoint records
      ``config`` and SHA-256 hashes of the training images (with their weights) and of the
      process; resuming with a different configuration (any field but ``chunk``), data or
      process raises ``ValueError`` naming the difference.
    - `checkpoint_every`: a multiple of ``config.chunk`` (default: only at the end).
    - `stop_after`: stop once this many steps are done (a multiple of ``config.chunk``),
      e.g. to simulate an interruption.
    - `allow_config_change`: resume from a checkpoint of a different configuration, data or
      process anyway (the network structure and ``n_steps`` must still match).
    - `log`: optional callable receiving one progress line per chunk.

    **Returns:** a :class:`TrainResult`.
    """
    check_instance(net, AbstractDenoiserNet, "net", "a gltheory denoiser network")
    check_instance(process, AbstractProcess, "process", PROCESS)
    check_instance(config, TrainConfig, "config", "a TrainConfig")
    y, w = images_and_weights(images)
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
            check_positive_int(v, name)
            if v % config.chunk:
                raise ValueError(f"{name}={v} must be a multiple of config.chunk={config.chunk}.")
    if not isinstance(allow_config_change, bool):
        raise ValueError(f"allow_config_change must be True or False, got {allow_config_change!r}.")
    state = init_train_state(net, config)
    dtype = state.losses.dtype
    y, w = y.astype(dtype), w.astype(dtype)
    record = None
    if checkpoint is not None:
        record = {
            "config": to_jsonable(dataclasses.asdict(config)),
            "data_sha256": _sha256(y, w),
            "process_sha256": _process_sha256(process),
        }
        if resume and Path(checkpoint).is_file():
            state = _load_checkpoint(checkpoint, state, record, allow_config_change)
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
            _write_checkpoint(checkpoint, state, record)

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
    images: LatticeImages | Real[ArrayLike, " n *lattice"],
    process: AbstractProcess,
    key: PRNGKeyArray,
    *,
    log_snr_range: tuple[float | int, float | int] = (-6.0, 8.0),
    n_nodes: int | np.integer = 16,
    n_noise: int | np.integer = 8,
    weighting: Weighting | str = "snr_plus_one",
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    r"""Monte Carlo estimate of the training objective with fixed quadrature in $\lambda$.

    $\bar{\mathcal L}=\frac1{\Delta\lambda}\int d\lambda\,w(\lambda)\,\mathbb E_{y,z}\frac1d\|D(a y+bz)-y\|^2$
    with Gauss–Legendre nodes in $\lambda$ (exact average over the training images with
    their weights; ``n_noise`` noise draws per image and node from ``key``). ``model`` is a
    :class:`ScoreNetwork` or any denoiser callable ``D(x, t)`` on batches.

    **Returns:** ``(loss, se)``: the estimate and its standard error over the independent
    noise draws (per image and node, combined with the weights).
    """
    y, w = images_and_weights(images)
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
    images: LatticeImages | Real[ArrayLike, " n *lattice"],
    process: AbstractProcess,
    *,
    log_snr_range: tuple[float | int, float | int] = (-6.0, 8.0),
    n_nodes: int | np.integer = 16,
    weighting: Weighting | str = "snr_plus_one",
) -> Float[Array, ""]:
    r"""Exact objective of the best linear (Wiener/Gaussian) denoiser, same quadrature as :func:`denoising_loss`.

    With data mean $m$ and covariance $C$ (eigenvalues $c_j$), the best affine denoiser is
    $D(x)=m+a\,C(a^2C+b^2I)^{-1}(x-am)$ and its mean-squared error per site is
    $$\frac1d\,\mathrm{tr}\big[b^2C(a^2C+b^2I)^{-1}\big]=\frac1d\sum_j\frac{b^2c_j}{a^2c_j+b^2},$$
    exactly, for any data law with that mean and covariance (the data being the
    training-image distribution here).
    """
    _, C = data_moments(images)
    dtype = C.dtype
    c = jnp.clip(jnp.linalg.eigvalsh(C), 0.0, None)
    lam, wq = _gauss_legendre(*log_snr_range, n_nodes)
    lam = jnp.asarray(lam, dtype)
    t = process.t_of_snr(jnp.exp(lam)).astype(dtype)
    a2, b2 = process.a(t) ** 2, process.b2(t)
    mse = jnp.mean(b2[:, None] * c[None] / (a2[:, None] * c[None] + b2[:, None]), axis=1)
    return jnp.sum(jnp.asarray(wq, dtype) * _weight(process, t, weighting) * mse)
