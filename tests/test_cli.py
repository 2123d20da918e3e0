"""The ``gltheory report`` job end to end, its exit codes, and the atomic file writer.

The report enables float64 globally, so it runs in a subprocess (``python -m gltheory``)
and never changes this process's JAX configuration.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import gltheory
from gltheory import _io, cli, experiments, report as rep

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = (
    "critical_times.png",
    "class_fractions.png",
    "marginal_variance.png",
    "trajectories.png",
    "pitchfork.png",
    "generative_potential.png",
    "exponents_solver.png",
    "exponents_bath.png",
    "cloning.png",
)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("JAX_PLATFORMS", "cpu")
    return env


def _run(args, *, timeout=300):
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ----------------------------------------------------------------------------------------------
# the real report (one --quick --json run shared by the tests below)
# ----------------------------------------------------------------------------------------------


# The foundation experiments (the ones whose rows and figures are asserted below). The other
# experiments (field, criticality, guidance, thermo, nets) are run at --quick size with their
# rows checked in their own test modules, so the CLI test does not run them a second time.
FOUNDATION = (
    "critical_times",
    "two_point_sde",
    "gaussian_2d",
    "meanfield_critical",
    "meanfield_exponents",
    "bath_exponents",
    "cloning",
)


def _report(out, only, *, timeout):
    return _run(
        ["-m", "gltheory", "report", "--quick", "--json", "--seed", "0"]
        + ["--only", ",".join(only), "--out", str(out)],
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    """The fast tier's end-to-end run: the ``critical_times`` experiment alone (closed forms and
    root finding; about 20 s), through the real CLI in a fresh process."""
    out = tmp_path_factory.mktemp("report") / "out"
    return _report(out, ("critical_times",), timeout=600), out


@pytest.fixture(scope="module")
def foundation_report(tmp_path_factory):
    """All foundation experiments at --quick size (about 3 min on 2 idle cores: slow tier)."""
    out = tmp_path_factory.mktemp("report") / "out"
    return _report(out, FOUNDATION, timeout=2400), out


def _check_critical_time_rows(by_name):
    # the exact critical times (docs/theory/critical-times.md#closed-forms)
    assert by_name["t_c^S OU L=1"]["theory"] == pytest.approx(0.5 * math.log(2), abs=1e-15)
    assert by_name["t_c^S OU L=1"]["measured"] == pytest.approx(0.346574, abs=1e-6)
    assert by_name["t_c^D OU L=1"]["measured"] == pytest.approx(0.5 * math.asinh(1), abs=1e-9)
    assert by_name["t_c^S OU L=4"]["measured"] == pytest.approx(0.804719, abs=1e-6)
    assert by_name["t_c^D OU L=4"]["measured"] == pytest.approx(1.047356, abs=1e-6)
    assert by_name["t_c^O OU L=1"]["theory"] is None and by_name["t_c^O OU L=1"]["measured"] is None
    assert by_name["t_c^S VE-edm L=1"]["measured"] == pytest.approx(1.0, abs=1e-9)


def _check_meanfield_critical_rows(by_name):
    # gltheory.critical_times on two deltas and on the d = 64 two-cluster mixture
    assert by_name["critical_times sde, +-1 OU"]["measured"] == pytest.approx(0.440687, abs=1e-6)
    mix = "critical_times {}, mixture d=64 |m|^2=d s0^2=1 OU"
    assert by_name[mix.format("score")]["measured"] == pytest.approx(0.5 * math.log(64), abs=1e-9)
    assert by_name[mix.format("sde")]["measured"] == pytest.approx(0.5 * math.log(128), abs=1e-9)
    assert by_name[mix.format("ode")]["measured"] is None


def test_quick_report_exit_code_and_rows(quick_report):
    proc, out = quick_report
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "ok" and report["n_off"] == 0
    rows = report["rows"]
    assert len(rows) >= 10
    assert [r["name"] for r in rows if r["status"] != "ok"] == []
    assert {r["group"] for r in rows} == {"critical_times"}  # only what --only asked for
    assert set(report["timings_s"]) - {"total", "experiments_total", "figures"} == {
        "critical_times"
    }
    for r in rows:
        assert set(r) >= {"name", "theory", "measured", "se", "status"}
    _check_critical_time_rows({r["name"]: r for r in rows})
    # configuration, environment and timings are recorded
    assert report["config"]["quick"] is True and report["config"]["seed"] == 0
    env = report["environment"]
    assert env["x64"] is True and env["jax"] and env["jaxlib"] and env["python"]
    assert report["timings_s"]["total"] > 0


@pytest.mark.slow
def test_foundation_report_rows_and_files(foundation_report):
    proc, out = foundation_report
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "ok" and report["n_off"] == 0
    rows = report["rows"]
    assert len(rows) >= 30
    assert [r["name"] for r in rows if r["status"] != "ok"] == []
    assert {r["group"] for r in rows} == set(FOUNDATION)
    assert set(report["timings_s"]) - {"total", "experiments_total", "figures"} == set(FOUNDATION)
    by_name = {r["name"]: r for r in rows}
    _check_critical_time_rows(by_name)
    _check_meanfield_critical_rows(by_name)
    # exponents: solver within 1 %, simulation rows carry a standard error
    assert by_name["exponent delta (solver)"]["measured"] == pytest.approx(3.0, rel=0.01)
    gamma = by_name["gamma bath Gibbs MC, N=1e+08"]
    assert gamma["theory"] == 1.0 and 0 < gamma["se"] < 0.1
    phi = [r for r in rows if r["group"] == "cloning" and r["name"].startswith("phi(t_S)")]
    assert len(phi) == 1 and phi[0]["theory"] == pytest.approx(0.7752, abs=1e-3)
    for name in FIGURES:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    assert set(FIGURES) | {"report.json"} <= set(report["files"])


def test_quick_report_files(quick_report):
    proc, out = quick_report
    assert proc.returncode == 0, proc.stderr[-4000:]
    data = (out / "critical_times.png").read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000
    report = json.loads((out / "report.json").read_text())
    assert {"critical_times.png", "report.json"} <= set(report["files"])
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_quick_report_json_stdout(quick_report):
    proc, out = quick_report
    assert proc.returncode == 0, proc.stderr[-4000:]
    printed = json.loads(proc.stdout)  # stdout is pure JSON
    assert printed == json.loads((out / "report.json").read_text())
    # the human table and the progress lines go to stderr
    assert "quantity" in proc.stderr and "measured" in proc.stderr and "status" in proc.stderr
    assert "(1/1)" in proc.stderr


# ----------------------------------------------------------------------------------------------
# exit codes
# ----------------------------------------------------------------------------------------------


def test_off_and_failed_rows_exit_1(tmp_path):
    """A row outside its tolerance, or an experiment that raises, makes the exit status 1."""
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import sys
        from gltheory import cli, experiments, report as rep

        def good(cfg, key):
            return rep.ExperimentResult(
                [rep.Row("good", 1.0, 1.0 + 1e-12, tol=1e-9, tol_basis="solver", note="tol = x")]
            )

        def bad(cfg, key):
            return rep.ExperimentResult([rep.Row("bad", 0.5, 0.6, se=0.01)])

        def boom(cfg, key):
            raise RuntimeError("kaboom")

        experiments.EXPERIMENTS[:] = [
            rep.Experiment("good", "good", good),
            rep.Experiment("bad", "bad", bad),
            rep.Experiment("boom", "boom", boom),
        ]
        sys.exit(cli.main(["report", "--out", {str(out)!r}]))
        """
    )
    proc = _run(["-c", script], timeout=120)
    assert proc.returncode == 1, proc.stderr[-4000:]
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "off"
    assert report["off"] == ["bad", "boom: failed"]
    assert "bad" in proc.stderr and "kaboom" in proc.stderr
    # the human table is on stdout when --json is not given
    assert "quantity" in proc.stdout and "good" in proc.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--seed", "-1"],
        ["report", "--seed", "abc"],
        ["report", "--bogus"],
        ["nonsense"],
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2


def test_report_list_and_only(tmp_path, capsys):
    """--list names every registered experiment; --only with a name that is not one exits 2
    and says which names are allowed (before anything is created or run)."""
    assert cli.main(["report", "--list"]) == 0
    listed = [ln.split()[0] for ln in capsys.readouterr().out.splitlines()]
    assert listed == [e.name for e in experiments.EXPERIMENTS] and set(FOUNDATION) < set(listed)
    out = tmp_path / "never"
    for bad in ("bogus", "cloning,bogus", ","):
        with pytest.raises(SystemExit) as exc:
            cli.main(["report", "--only", bad, "--out", str(out)])
        assert exc.value.code == 2
        assert "allowed" in capsys.readouterr().err
    assert not out.exists()


def test_out_is_a_file_exits_2(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", "--out", str(f)])
    assert exc.value.code == 2


def test_no_command_exits_2(capsys):
    assert cli.main([]) == 2


def test_help_exits_0(capsys):
    for argv in (["--help"], ["report", "--help"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 0
    assert "--quick" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# the registry and the light top level
# ----------------------------------------------------------------------------------------------

# the names `gltheory report --list` prints, in order (unchanged by the move to experiments/)
ALL_EXPERIMENTS = (
    *FOUNDATION,
    "field_gl",
    "criticality",
    "guidance_pulses",
    "thermodynamics",
    "trained_network",
    "schedules",
    "exponents",
    "spatial_class",
    "kibble_zurek",
)


def test_registry_lists_every_experiment_module():
    """experiments/__init__.py is the one registry: it lists every experiment module (each
    public module of the package), in report order, and every experiment of each."""
    folder = Path(experiments.__file__).parent
    on_disk = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}
    listed = [m.__name__.rsplit(".", 1)[-1] for m in experiments.MODULES]
    assert set(listed) == on_disk and len(listed) == len(on_disk)
    assert experiments.EXPERIMENTS == [e for m in experiments.MODULES for e in m.EXPERIMENTS]
    assert tuple(e.name for e in experiments.EXPERIMENTS) == ALL_EXPERIMENTS
    assert experiments.by_name("cloning").name == "cloning"
    with pytest.raises(ValueError, match="name"):
        experiments.by_name("bogus")


def test_experiment_sizes_have_default_and_quick():
    """Every experiment module has its own frozen size configuration with default() and
    quick() forms; ReportConfig(quick=...) picks one."""
    for m in experiments.MODULES:
        cls = m.CONFIG
        default, quick = cls.default(), cls.quick()
        assert isinstance(default, cls) and isinstance(quick, cls)
        with pytest.raises(dataclasses.FrozenInstanceError):
            default.__setattr__(dataclasses.fields(cls)[0].name, None)
        assert cls.of(rep.ReportConfig.default(quick=True)) == quick
        assert cls.of(rep.ReportConfig.default()) == default


def test_import_is_light_and_version_single_source():
    """`import gltheory` imports neither the report, the experiments, plotting nor
    matplotlib, and its version is the installed distribution's."""
    code = (
        "import sys, gltheory; print(sorted(m for m in sys.modules if 'matplotlib' in m or "
        "m.split('.')[:2] in (['gltheory', 'report'], ['gltheory', 'experiments'], "
        "['gltheory', 'plotting'], ['gltheory', 'cli'])))"
    )
    proc = _run(["-c", code], timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip() == "[]"
    assert gltheory.__version__ == importlib.metadata.version("gltheory")


# ----------------------------------------------------------------------------------------------
# rows and the table (no JAX work)
# ----------------------------------------------------------------------------------------------


def test_row_status_rules():
    from gltheory.report import Row, format_table

    assert Row("a", 1.0, 1.02, se=0.01).ok  # 2 SE
    assert not Row("a", 1.0, 1.04, se=0.01).ok  # 4 SE
    det = {"tol": 1e-9, "tol_basis": "solver", "note": "tol = 10 x the solver's"}
    assert Row("a", 1.0, 1.0 + 5e-10, **det).ok
    assert not Row("a", 1.0, 1.0 + 5e-9, **det).ok
    assert Row("none", None, None).ok
    assert not Row("found one", None, 0.3, **det).ok
    assert not Row("missed", 0.3, None, **det).ok
    assert not Row("nan", 0.3, float("nan"), **det).ok
    assert not Row("failed", None, None, failure="boom").ok
    with pytest.raises(ValueError):
        Row("needs se or tol", 1.0, 1.0)
    table = format_table([Row("alpha", 1.0, 1.02, se=0.01), Row("beta", None, None)])
    lines = table.splitlines()
    assert lines[0].split() == ["quantity", "theory", "measured", "error/SE", "status"]
    assert lines[2].split()[-1] == "ok" and "2.00 SE" in lines[2]
    assert "none" in lines[3]


# ----------------------------------------------------------------------------------------------
# atomic writes
# ----------------------------------------------------------------------------------------------


def test_atomic_write_roundtrip(tmp_path):
    p = _io.atomic_write_text(tmp_path / "a.txt", "hello")
    assert p.read_text() == "hello"
    assert os.listdir(tmp_path) == ["a.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(p).st_mode & 0o777 == 0o666 & ~umask  # like open(), not mkstemp's 0600
    _io.atomic_write_json(tmp_path / "b.json", {"x": float("nan"), "y": (1, 2.5)})
    assert json.loads((tmp_path / "b.json").read_text()) == {"x": None, "y": [1, 2.5]}


def test_atomic_write_crash_leaves_nothing(tmp_path):
    def crash(f):
        f.write(b"partial data " * 1000)
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError, match="crash mid-write"):
        _io.atomic_write(tmp_path / "new.bin", crash)
    assert os.listdir(tmp_path) == []  # neither the file nor a temp file


def test_atomic_write_crash_keeps_old_file(tmp_path):
    dest = tmp_path / "report.json"
    dest.write_text('{"old": true}')

    def crash(f):
        f.write(b'{"new": ')
        raise KeyboardInterrupt  # even a BaseException cleans up

    with pytest.raises(KeyboardInterrupt):
        _io.atomic_write(dest, crash)
    assert dest.read_text() == '{"old": true}'
    assert os.listdir(tmp_path) == ["report.json"]


def test_atomic_json_unserialisable_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        _io.atomic_write_json(tmp_path / "r.json", {"bad": object()})
    assert os.listdir(tmp_path) == []


def test_save_figure_is_png_and_atomic(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    p = _io.save_figure(tmp_path / "f.png", fig)
    assert p.read_bytes().startswith(PNG_MAGIC)

    class Broken(Figure):
        def savefig(self, *args, **kwargs):
            raise ValueError("render failed")

    with pytest.raises(ValueError, match="render failed"):
        _io.save_figure(tmp_path / "g.png", Broken())
    assert sorted(os.listdir(tmp_path)) == ["f.png"]


def test_atomic_write_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        _io.atomic_write_text(tmp_path / "nope" / "a.txt", "x")
