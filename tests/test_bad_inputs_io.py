"""Bad inputs of training, checkpoints, atomic files and the CLI (issue 16, items 1, 3 and 5).

Every case raises an error that names the argument (or the file) and what is allowed, or is
shown to behave as documented: a TrainConfig field out of range, training on no images or on
non-finite ones, resuming a checkpoint of another run, loading a damaged checkpoint, the
temporary files of killed saves, an ``--out`` folder that cannot be written, and Ctrl-C.
The networks are tiny and train for at most two steps.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gltheory as gl
from gltheory import _io, cli, nets, report as rep

REPO = Path(__file__).resolve().parents[1]
OU = gl.OU(5.0)
CFG = nets.TrainConfig(n_steps=2, batch_size=4, chunk=1, log_snr_min=-2.0, log_snr_max=4.0)
IMAGES = jnp.asarray(np.sign(np.random.default_rng(0).normal(size=(6, 8))))


def _net():
    return nets.ConvDenoiser(1, window=3, width=2, depth=1, key=jax.random.PRNGKey(0))


# ---------------------------------------------------------------------------------------------
# TrainConfig: every field is validated
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("clip_norm", -1),  # was accepted: the loss rose (1.892 -> 2.509)
        ("clip_norm", 0.0),
        ("clip_norm", float("nan")),
        ("learning_rate", 0.0),
        ("learning_rate", float("inf")),
        ("learning_rate", "1e-3"),
        ("end_lr_factor", -0.1),
        ("end_lr_factor", 2.0),
        ("weight_decay", -1e-4),
        ("weight_decay", float("nan")),
        ("ema_decay", 1.0),
        ("log_snr_min", float("nan")),
        ("log_snr_max", float("inf")),
        ("sigma_data", 0.0),
        ("sigma_data", float("nan")),
        ("n_steps", 0),
        ("batch_size", 2.5),
        ("chunk", 0),
        ("warmup_steps", -1),
        ("seed", -1),
        ("seed", 1.5),
        ("seed", True),
        ("weighting", "linear"),
        ("parametrisation", "score"),
    ],
)
def test_train_config_rejects_bad_field(field, value):
    # as a user calls it: the suite's run-time type checker would catch the wrong types first
    cfg = object.__new__(nets.TrainConfig)
    for f in dataclasses.fields(nets.TrainConfig):
        object.__setattr__(cfg, f.name, value if f.name == field else getattr(CFG, f.name))
    with pytest.raises(ValueError, match=rf"TrainConfig\.{field} must be"):
        cfg.__post_init__()


def test_train_config_accepts_its_documented_range():
    cfg = dataclasses.replace(CFG, clip_norm=float("inf"), end_lr_factor=0, weight_decay=0, seed=7)
    assert cfg.clip_norm == float("inf")
    with pytest.raises(ValueError, match="log_snr_min < log_snr_max"):
        dataclasses.replace(CFG, log_snr_min=4.0, log_snr_max=4.0)


# ---------------------------------------------------------------------------------------------
# train: the images
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "images, match",
    [
        (jnp.zeros((0, 8)), "images is empty"),
        (IMAGES.at[2, 3].set(jnp.nan), r"images must be finite: .* 1 of 6 images .*index 2"),
        (IMAGES.at[4, 0].set(-jnp.inf), r"images must be finite: .* 1 of 6 images .*index 4"),
    ],
)
def test_train_rejects_empty_or_nonfinite_images(images, match):
    with pytest.raises(ValueError, match=match):
        nets.train(_net(), images, OU, CFG)
    with pytest.raises(ValueError, match=match):  # the losses share the check
        nets.linear_denoiser_loss(images, OU)


# ---------------------------------------------------------------------------------------------
# checkpoints: the run record, the checksum, damaged files
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def ckpt(tmp_path):
    """A checkpoint of a fresh state that records CFG, IMAGES and OU (nothing is compiled)."""
    state = nets.init_train_state(_net(), CFG)
    path = tmp_path / "run.ckpt"
    nets.save_checkpoint(path, state, config=CFG, images=IMAGES, process=OU)
    return path, state


def _same_leaves(a, b):
    la = jax.tree_util.tree_leaves(eqx.filter(a, eqx.is_array))
    lb = jax.tree_util.tree_leaves(eqx.filter(b, eqx.is_array))
    return len(la) == len(lb) and all(
        x.dtype == y.dtype and np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(la, lb)
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(config=dataclasses.replace(CFG, seed=1, learning_rate=1e-2)), None),
        (dict(images=IMAGES[::-1]), "the training images"),
        (dict(process=gl.OU(4.0)), "the process"),
    ],
)
def test_resume_with_another_run_raises(ckpt, kwargs, match):
    path, _ = ckpt
    args = dict(config=CFG, images=IMAGES, process=OU) | kwargs
    with pytest.raises(ValueError, match="different run") as err:
        nets.train(_net(), args["images"], args["process"], args["config"], checkpoint=path)
    msg = str(err.value)
    assert str(path) in msg and "allow_config_change=True" in msg
    if match is None:  # both differing fields are named, with their values
        assert "config.seed (checkpoint 0, now 1)" in msg
        assert "config.learning_rate (checkpoint 0.003, now 0.01)" in msg
    else:
        assert match in msg and "config." not in msg
    with pytest.raises(ValueError, match="different run"):  # load_checkpoint checks the same
        nets.load_checkpoint(path, ckpt[1], **args)


def test_resume_override_and_chunk_is_not_a_difference(tmp_path):
    # a finished run (step == n_steps): resuming it runs no step, so nothing is compiled here
    state = nets.init_train_state(_net(), CFG)
    losses = jnp.asarray([0.5, 0.25], state.losses.dtype)
    done = eqx.tree_at(lambda s: (s.step, s.losses), state, (jnp.asarray(2, jnp.int32), losses))
    path = nets.save_checkpoint(tmp_path / "done.ckpt", done, config=CFG, images=IMAGES, process=OU)
    # the chunking does not change the result, so it is not compared
    res = nets.train(_net(), IMAGES, OU, dataclasses.replace(CFG, chunk=2), checkpoint=path)
    assert _same_leaves(res.state, done)
    other = dataclasses.replace(CFG, seed=1, learning_rate=1e-2)
    with pytest.raises(ValueError, match="different run"):
        nets.train(_net(), IMAGES, OU, other, checkpoint=path)
    res = nets.train(_net(), IMAGES, OU, other, checkpoint=path, allow_config_change=True)
    assert _same_leaves(res.state, done)
    back = nets.load_checkpoint(path, state, config=other, allow_config_change=True)
    assert _same_leaves(back, done)


def test_checkpoint_without_record_is_refused_for_resuming(tmp_path):
    state = nets.init_train_state(_net(), CFG)
    path = nets.save_checkpoint(tmp_path / "bare.ckpt", state)
    assert _same_leaves(nets.load_checkpoint(path, state), state)  # no comparison asked
    with pytest.raises(ValueError, match="records no training configuration"):
        nets.train(_net(), IMAGES, OU, CFG, checkpoint=path)


def _flip(blob: bytes, i: int, bit: int = 0) -> bytes:
    return blob[:i] + bytes([blob[i] ^ (1 << bit)]) + blob[i + 1 :]


def test_damaged_checkpoints_raise_naming_the_file(ckpt):
    path, state = ckpt
    blob = path.read_bytes()
    header_end = blob.index(b"\n", blob.index(b"{")) + 1  # end of the JSON record line
    cases = {
        "empty": (b"", "is empty"),
        "truncated_data": (blob[:-7], "is truncated"),
        "truncated_header": (blob[:30], "truncated or its header is corrupted"),
        "garbage": (b"\x00garbage" * 64, "not a gltheory checkpoint"),
        "magic_flipped": (_flip(blob, 3, 5), "not a gltheory checkpoint"),
        "sha_line_damaged": (blob.replace(b"sha256:", b"sha265:", 1), "header is corrupted"),
        "record_bit": (_flip(blob, header_end - 20, 1), "checksum does not match"),
        "data_first_bit": (_flip(blob, header_end), "checksum does not match"),
        "data_middle_bit": (_flip(blob, (header_end + len(blob)) // 2, 6), "checksum does not"),
        "data_last_bit": (_flip(blob, len(blob) - 1, 7), "checksum does not match"),
        "older_format": (None, "not a gltheory checkpoint"),
    }
    for name, (data, match) in cases.items():
        bad = path.with_name(name)
        if data is None:  # the format before checksums: eqx.tree_serialise_leaves alone
            with open(bad, "wb") as f:
                eqx.tree_serialise_leaves(f, state)
        else:
            bad.write_bytes(data)
        with pytest.raises(ValueError, match=match) as err:
            nets.load_checkpoint(bad, state)
        assert str(bad) in str(err.value), name
    # the undamaged file still loads, bit for bit (the checks above can pass)
    assert _same_leaves(nets.load_checkpoint(path, state), state)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        nets.load_checkpoint(path.with_name("missing"), state)


def test_checkpoint_like_must_be_a_matching_train_state(ckpt):
    path, _ = ckpt
    # without the run-time type checker of the test suite, as a user calls it
    load = inspect.unwrap(nets.load_checkpoint)
    with pytest.raises(ValueError, match="like must be a TrainState"):
        load(path, None)
    longer = nets.init_train_state(_net(), dataclasses.replace(CFG, n_steps=3))
    with pytest.raises(ValueError, match=rf"{path.name} does not fit `like`.*losses"):
        nets.load_checkpoint(path, longer)
    # another structure: one leaf more, or no optimiser state
    state = nets.init_train_state(_net(), CFG)
    more = eqx.tree_at(lambda s: s.step, state, (state.step, state.step))
    less = eqx.tree_at(lambda s: s.opt_state, state, ())
    for like, match in ((more, "does not fit `like`"), (less, "does not fit `like`")):
        with pytest.raises(ValueError, match=match) as err:
            nets.load_checkpoint(path, like)
        assert str(path) in str(err.value)


# ---------------------------------------------------------------------------------------------
# atomic writes: the temporary files of killed saves
# ---------------------------------------------------------------------------------------------

_KILLED_WRITER = textwrap.dedent(
    """
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("_io", sys.argv[1])
    io_ = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(io_)

    def write(f):
        f.write(b"half a file")
        f.flush()
        print("writing", flush=True)
        time.sleep(60)

    io_.atomic_write(sys.argv[2], write)
    """
)


def _temps(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))


def test_killed_save_leaves_a_temp_file_the_next_save_removes(tmp_path):
    dest = tmp_path / "state.ckpt"
    dest.write_bytes(b"old")
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, _io.__file__, str(dest)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.kill()  # SIGKILL: no clean-up code runs
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()
    left = _temps(tmp_path, dest.name)
    assert len(left) == 1 and left[0].endswith(".tmp") and f".{proc.pid}." in left[0]
    assert dest.read_bytes() == b"old"  # the destination was never touched
    _io.atomic_write_bytes(dest, b"new")
    assert dest.read_bytes() == b"new" and _temps(tmp_path, dest.name) == []


def test_stale_temp_rules_spare_live_writers(tmp_path):
    dest = tmp_path / "r.json"
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:32]  # as in the file names
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    dead = finished.pid
    old = time.time() - 2 * _io.STALE_TEMP_SECONDS
    files = {
        # name: (age, removed?)
        f".r.json.{host}.{dead}.abcdefgh.tmp": (None, True),  # writer gone
        f".r.json.{host}.{os.getpid()}.abcdefgh.tmp": (old, False),  # writer alive (this one)
        ".r.json.otherhost.12345.abcdefgh.tmp": (None, False),  # cannot tell, recent
        ".r.json.otherhost.12346.abcdefgh.tmp": (old, True),  # cannot tell, old
        ".r.json.abc_1234.tmp": (None, False),  # older naming scheme, recent
        ".r.json.abc_5678.tmp": (old, True),  # older naming scheme, old
        f".r.json.bak.{host}.{dead}.abcdefgh.tmp": (old, False),  # of r.json.bak
        ".r.json.backup.tmp": (old, False),  # not a temporary-file name of the writer
    }
    for name, (age, _) in files.items():
        (tmp_path / name).write_bytes(b"x")
        if age is not None:
            os.utime(tmp_path / name, (age, age))
    _io.atomic_write_text(dest, "{}")
    kept = set(_temps(tmp_path, dest.name))
    assert kept == {n for n, (_, removed) in files.items() if not removed}
    assert dest.read_text() == "{}"


# ---------------------------------------------------------------------------------------------
# CLI: --out writability before anything runs; Ctrl-C
# ---------------------------------------------------------------------------------------------


def _no_experiments(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("an experiment ran before --out was checked")

    monkeypatch.setattr(rep, "run_report", never)


def test_out_not_writable_fails_before_any_experiment(tmp_path, monkeypatch, capsys):
    _no_experiments(monkeypatch)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    out = tmp_path / "new" / "out"
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", "--only", "critical_times", "--no-cache", "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out folder" in err and "not writable" in err
    assert "Permission denied" in err and "Traceback" not in err
    assert not out.exists()  # the folder this run created is removed again


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write a read-only folder"
)
def test_out_read_only_folder(tmp_path, monkeypatch, capsys):
    _no_experiments(monkeypatch)
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(SystemExit) as exc:
            cli.main(["report", "--only", "critical_times", "--no-cache", "--out", str(out)])
    finally:
        out.chmod(0o755)
    assert exc.value.code == 2 and "not writable" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_out_writable_probe_leaves_nothing(tmp_path, monkeypatch):
    """The probe file is created and removed; the run then starts (here: Ctrl-C at once)."""
    out = tmp_path / "out"
    out.mkdir()
    seen = []

    def interrupted(*args, **kwargs):
        seen.append(sorted(p.name for p in out.iterdir()))
        raise KeyboardInterrupt

    monkeypatch.setattr(rep, "run_report", interrupted)
    assert cli.main(["report", "--only", "critical_times", "--no-cache", "--out", str(out)]) == 130
    assert seen == [[]] and list(out.iterdir()) == []  # an existing folder is kept


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rep, "run_report", interrupted)
    code = cli.main(["report", "--only", "critical_times", "--no-cache", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 130
    assert err.strip().splitlines()[-1] == (
        "gltheory: interrupted (Ctrl-C); no partial files were left."
    )
    assert "Traceback" not in err and not out.exists()  # the empty folder it made is removed


@pytest.mark.slow
def test_sigint_to_the_cli_process(tmp_path):
    """A real SIGINT to ``python -m gltheory report`` while an experiment runs (about 10 s)."""
    out = tmp_path / "out"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gltheory", "report", "--quick", "--only", "critical_times"]
        + ["--no-cache", "--out", str(out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr.readline().startswith("gltheory report: out=")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert (
        err.strip().splitlines()[-1]
        == "gltheory: interrupted (Ctrl-C); no partial files were left."
    )
    assert "Traceback" not in err
    assert not out.exists() or not any(p.name.endswith(".tmp") for p in out.iterdir())
