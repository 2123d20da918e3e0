"""Figures for reports: pure functions of arrays that return a ``matplotlib.figure.Figure``.

No pyplot, no global state: each function builds its own ``Figure`` (rendered by the Agg
canvas when saved), so figures can be made from threads or tests and never leak. Save them
with :func:`gltheory._io.save_figure` (atomic) or ``fig.savefig``.

Inputs are NumPy-compatible arrays (JAX arrays work too). Time axes use the forward time
``t`` of the process; generation runs from right to left on an inverted axis where noted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

__all__ = [
    "critical_times_figure",
    "class_fractions_figure",
    "marginal_variance_figure",
    "trajectories_figure",
    "gaussian_covariance_figure",
    "pitchfork_figure",
    "potential_figure",
    "exponents_figure",
    "cloning_figure",
]

_COLORS = ("C0", "C1", "C2", "C3", "C4", "C5")


def _np(x) -> np.ndarray:
    return np.asarray(x, dtype=float)


def critical_times_figure(panels: Sequence[Mapping[str, Any]], *, ylim=(-3.0, 4.0)) -> Figure:
    """Linearised vector fields at the symmetric point vs ``t``, with their zeros marked.

    **Arguments:**

    - `panels`: one mapping per panel with keys
        - ``"title"``: panel title;
        - ``"t"``: times, shape ``(n,)``;
        - ``"curves"``: ``{label: values}``, each of shape ``(n,)`` (e.g. ``ds/dx(0,t)``);
        - ``"roots"``: ``{label: (theory, measured)}`` (either may be ``None``); theory is
          drawn as a dashed vertical line, the measured root as a marker on the axis;
        - optional ``"xlabel"``.
    - `ylim`: y range (the fields diverge like $1/t^2$ as $t\\to0$).

    **Returns:** a ``Figure`` with one axes per panel (two columns).
    """
    n = len(panels)
    ncols = 2 if n > 1 else 1
    nrows = -(-n // ncols)
    fig = Figure(figsize=(6.0 * ncols, 4.0 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        t = _np(panel["t"])
        for (label, y), c in zip(panel["curves"].items(), _COLORS):
            ax.plot(t, np.clip(_np(y), ylim[0] - 1, ylim[1] + 1), color=c, label=label)
        for (label, (theory, measured)), c in zip(panel.get("roots", {}).items(), _COLORS):
            if theory is not None:
                ax.axvline(theory, color=c, ls="--", lw=1.0, label=f"{label} = {theory:.6f}")
            if measured is not None:
                ax.plot([measured], [0.0], marker="o", mfc="none", mec=c, ms=9, mew=1.5)
        ax.axhline(0.0, color="k", lw=0.6)
        ax.set_ylim(*ylim)
        ax.set_xlim(t.min(), t.max())
        ax.set_xlabel(panel.get("xlabel", "forward time t"))
        ax.set_title(panel["title"])
        ax.legend(fontsize=7, loc="upper right")
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle("Critical times: zeros of the linearised fields at x = 0 (o: measured root)")
    return fig


def class_fractions_figure(
    w_theory,
    measured,
    se,
    *,
    t=None,
    frac_t=None,
    frac_t_theory=None,
    t_marks: Mapping[str, float] | None = None,
) -> Figure:
    """Measured class fractions vs the data weights, and optionally $P(x_t>0)$ along the run.

    **Arguments:**

    - `w_theory`, `measured`, `se`: shape ``(k,)``, the weight $w$ of $+\\mu$, the measured
      fraction of samples with $x>0$, and its standard error.
    - `t`, `frac_t`, `frac_t_theory`: optional times ``(n,)`` and fractions ``(k, n)`` of
      the ensemble with $x_t>0$ along the reverse run, measured and exact.
    - `t_marks`: optional ``{label: t}`` vertical lines (e.g. critical times).
    """
    w_theory, measured, se = _np(w_theory), _np(measured), _np(se)
    two = t is not None and frac_t is not None
    fig = Figure(figsize=(11.0 if two else 5.5, 4.2), layout="constrained")
    axes = fig.subplots(1, 2 if two else 1, squeeze=False)[0]
    ax = axes[0]
    lo, hi = 0.0, 1.0
    ax.plot([lo, hi], [lo, hi], color="0.6", lw=1, label="measured = w")
    ax.errorbar(
        w_theory, measured, yerr=3 * se, fmt="o", capsize=4, color="C3", label="measured ± 3 SE"
    )
    for w, m, s in zip(w_theory, measured, se):
        ax.annotate(
            f"{m:.4f} ± {s:.4f}", (w, m), textcoords="offset points", xytext=(8, -12), fontsize=8
        )
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("data weight w of +μ")
    ax.set_ylabel("fraction of samples with x > 0")
    ax.set_title("Class fractions from the exact-score reverse SDE")
    ax.legend(loc="upper left", fontsize=8)
    if two:
        ax = axes[1]
        tt = _np(t)
        ft = np.atleast_2d(_np(frac_t))
        ftt = None if frac_t_theory is None else np.atleast_2d(_np(frac_t_theory))
        for i, (w, c) in enumerate(zip(w_theory, _COLORS)):
            ax.plot(tt, ft[i], color=c, lw=1.2, label=f"measured, w={w:g}")
            if ftt is not None:
                ax.plot(tt, ftt[i], color="k", ls=":", lw=1.0, label="exact" if i == 0 else None)
        for (label, tm), c in zip((t_marks or {}).items(), ("C2", "C4", "C5")):
            ax.axvline(tm, color=c, ls="--", lw=1, label=label)
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("forward time t (generation runs left to right)")
        ax.set_ylabel("P(x_t > 0)")
        ax.set_title("Fraction with x_t > 0 along the reverse run")
        ax.legend(fontsize=8)
    return fig


def marginal_variance_figure(
    t,
    var,
    var_se,
    var_theory,
    *,
    labels: Sequence[str],
    check_t=None,
    check_var=None,
    check_se=None,
    check_label: str = "direct forward samples",
) -> Figure:
    """Ensemble variance along the reverse run vs the forward-marginal variance, and residuals.

    **Arguments:**

    - `t`: saved times, shape ``(n,)``.
    - `var`, `var_se`, `var_theory`: shape ``(k, n)``, one row per run (``labels``).
    - `check_t`, `check_var`, `check_se`: optional ``(k, m)`` independent point checks
      (e.g. direct forward samples $a_ty+b_tz$) drawn with error bars.

    The lower panel shows $(\\text{measured}-\\text{theory})/\\text{SE}$ with the ±3 band.
    """
    tt = _np(t)
    var, var_se, var_theory = (np.atleast_2d(_np(v)) for v in (var, var_se, var_theory))
    fig = Figure(figsize=(7.5, 6.5), layout="constrained")
    ax, axz = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    for i, (label, c) in enumerate(zip(labels, _COLORS)):
        ax.fill_between(
            tt, var[i] - 3 * var_se[i], var[i] + 3 * var_se[i], color=c, alpha=0.25, lw=0
        )
        ax.plot(tt, var[i], color=c, lw=1.2, label=f"reverse SDE ensemble, {label}")
        ax.plot(tt, var_theory[i], color="k", ls=":", lw=1.0, label="theory" if i == 0 else None)
        z = (var[i] - var_theory[i]) / np.where(var_se[i] > 0, var_se[i], np.nan)
        axz.plot(tt, z, color=c, lw=1.0)
        if check_t is not None:
            ct = np.atleast_2d(_np(check_t))[i]
            cv = np.atleast_2d(_np(check_var))[i]
            cs = np.atleast_2d(_np(check_se))[i]
            ax.errorbar(
                ct,
                cv,
                yerr=3 * cs,
                fmt="s",
                ms=5,
                capsize=3,
                color=c,
                mfc="white",
                label=f"{check_label}, {label}",
            )
    axz.axhspan(-3, 3, color="0.9")
    axz.axhline(0, color="k", lw=0.6)
    axz.set_ylim(-5, 5)
    axz.set_ylabel("(meas − theory) / SE")
    axz.set_xlabel("forward time t")
    axz.set_xscale("log")
    ax.set_ylabel("Var[x_t]")
    ax.set_title("Forward-marginal variance a_t² Var[y] + b_t² (bands: ±3 SE)")
    ax.legend(fontsize=8)
    return fig


def trajectories_figure(
    t,
    x,
    *,
    t_marks: Mapping[str, float] | None = None,
    centres=None,
    t_max: float | None = None,
) -> Figure:
    """A few reverse trajectories $x_t$ (``x`` shape ``(n_times, n_traj)``) against ``t``.

    `t_marks` draws labelled vertical lines (e.g. ``{"t_c^S": ..., "t_c^D": ...}``);
    `centres` (shape ``(n_times,)``) draws $\\pm a_t\\mu$ as dotted curves; `t_max` crops the
    time axis. Time runs right to left (generation order).
    """
    tt = _np(t)
    xx = _np(x)
    if xx.ndim == 1:
        xx = xx[:, None]
    keep = tt <= t_max if t_max is not None else np.ones_like(tt, dtype=bool)
    fig = Figure(figsize=(8.0, 4.5), layout="constrained")
    ax = fig.subplots()
    final = xx[-1]
    for j in range(xx.shape[1]):
        ax.plot(tt[keep], xx[keep, j], lw=0.7, alpha=0.8, color="C0" if final[j] > 0 else "C1")
    if centres is not None:
        cc = _np(centres)
        ax.plot(tt[keep], cc[keep], "k:", lw=1.0, label="±a_t μ")
        ax.plot(tt[keep], -cc[keep], "k:", lw=1.0)
    for (label, tm), c in zip((t_marks or {}).items(), ("C2", "C3", "C4")):
        ax.axvline(tm, color=c, ls="--", lw=1.2, label=f"{label} = {tm:.4f}")
    ax.invert_xaxis()
    ax.set_xlabel("forward time t (generation runs left to right)")
    ax.set_ylabel("x_t")
    ax.set_title(f"{xx.shape[1]} reverse-SDE trajectories (colour: final class)")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def gaussian_covariance_figure(
    samples, cov_theory, mean_theory, *, max_points: int = 2000
) -> Figure:
    """Scatter of 2-D samples with the theory and measured 1σ/2σ covariance ellipses."""
    xs = _np(samples)[:max_points]
    full = _np(samples)
    cov_theory, mean_theory = _np(cov_theory), _np(mean_theory)
    fig = Figure(figsize=(5.5, 5.0), layout="constrained")
    ax = fig.subplots()
    ax.scatter(xs[:, 0], xs[:, 1], s=2, alpha=0.3, color="C0", label="reverse SDE samples")
    ang = np.linspace(0, 2 * np.pi, 200)
    circle = np.stack([np.cos(ang), np.sin(ang)])
    for cov, mean, style, label in (
        (cov_theory, mean_theory, "k-", "theory"),
        (np.cov(full.T), full.mean(0), "C3--", "measured"),
    ):
        evals, evecs = np.linalg.eigh(cov)
        for k in (1, 2):
            pts = mean[:, None] + k * evecs @ (np.sqrt(np.maximum(evals, 0))[:, None] * circle)
            ax.plot(pts[0], pts[1], style, lw=1.2, label=f"{label} {k}σ" if k == 1 else None)
    ax.set_aspect("equal")
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.set_title("Gaussian N(μ, C): final reverse-SDE samples")
    ax.legend(fontsize=8)
    return fig


def pitchfork_figure(
    panels: Sequence[Mapping[str, Any]],
    *,
    t_marks: Mapping[str, float] | None = None,
    title: str = "Pitchfork: fixed points of the generative fields vs t",
) -> Figure:
    """Bifurcation (pitchfork) diagrams: fixed points along a line against time.

    **Arguments:**

    - `panels`: one mapping per panel with keys ``"title"``, ``"t"`` (shape ``(n,)``),
      ``"ell"`` (fixed-point coordinates, shape ``(n, k)``, NaN-padded, e.g.
      :class:`gltheory.FixedPoints` ``.ell`` of :func:`gltheory.bifurcation_diagram`),
      ``"stable"`` (bool, shape ``(n, k)``) and optional ``"curves"``
      (``{label: (t, y)}`` reference curves such as $\\pm a_t\\mu$ or $\\pm\\sqrt{6(t_c-t)}$).
    - `t_marks`: ``{label: t}`` vertical lines drawn on every panel (critical times).

    Stable branches are solid dots, unstable ones open circles; time runs right to left.
    """
    n = len(panels)
    fig = Figure(figsize=(5.5 * n, 4.3), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        t = _np(panel["t"])
        ell = np.atleast_2d(_np(panel["ell"]))
        stable = np.asarray(panel["stable"], dtype=bool)
        tt = np.broadcast_to(t[:, None], ell.shape)
        ok = np.isfinite(ell)
        ax.plot(tt[ok & stable], ell[ok & stable], "o", ms=2.5, color="C0", label="stable")
        ax.plot(
            tt[ok & ~stable],
            ell[ok & ~stable],
            "o",
            ms=3.5,
            mfc="none",
            mec="C3",
            mew=0.8,
            label="unstable",
        )
        for (label, (ct, cy)), c in zip(panel.get("curves", {}).items(), ("k", "0.5", "C4")):
            ax.plot(_np(ct), _np(cy), ls=":", color=c, lw=1.2, label=label)
        for (label, tm), c in zip((t_marks or {}).items(), ("C2", "C1", "C5")):
            ax.axvline(tm, color=c, ls="--", lw=1.2, label=f"{label} = {tm:.5f}")
        ax.invert_xaxis()
        ax.set_xlabel("forward time t (generation runs left to right)")
        ax.set_ylabel("fixed point ℓ (x = ℓ u)")
        ax.set_title(panel["title"])
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(title)
    return fig


def potential_figure(
    x,
    potentials: Mapping[str, Any],
    *,
    curvature: Mapping[str, Any] | None = None,
    t_marks: Mapping[str, float] | None = None,
    title: str = "Generative potential U(x, t) − U(0, t)",
) -> Figure:
    """The Raya–Ambrogioni potential at a few times, and optionally its curvature at 0 vs t.

    **Arguments:**

    - `x`: grid, shape ``(n,)``.
    - `potentials`: ``{label: U}`` with ``U`` of shape ``(n,)`` (shifted so $U(0)=0$ reads best).
    - `curvature`: optional ``{"t": (m,), "u2": (m,), "label": str}``, drawn in a second panel
      with the zero line and the ``t_marks``.
    """
    xx = _np(x)
    two = curvature is not None
    fig = Figure(figsize=(11.0 if two else 5.8, 4.3), layout="constrained")
    axes = fig.subplots(1, 2 if two else 1, squeeze=False)[0]
    ax = axes[0]
    cmap = ("C0", "C1", "C2", "C3", "C4", "C5", "C6")
    for (label, u), c in zip(potentials.items(), cmap):
        ax.plot(xx, _np(u), color=c, lw=1.4, label=label)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("x")
    ax.set_ylabel("U(x, t) − U(0, t)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    if two:
        ax = axes[1]
        ct = _np(curvature["t"])
        u2 = _np(curvature["u2"])
        ax.plot(ct, u2, color="C0", lw=1.4, label=curvature.get("label"))
        ax.axhline(0, color="k", lw=0.6)
        # the curvature diverges like -1/t as t -> 0: show the window around the zero
        span = max(float(np.nanmax(np.abs(u2[ct >= np.median(ct)]))), 1e-12)
        ax.set_ylim(-4 * span, 2 * span)
        for (label, tm), c in zip((t_marks or {}).items(), ("C2", "C1", "C5")):
            ax.axvline(tm, color=c, ls="--", lw=1.2, label=f"{label} = {tm:.5f}")
        ax.set_xlabel("forward time t")
        ax.set_ylabel("∂²U/∂x² at x = 0")
        ax.set_title("Curvature at the symmetric point (< 0: double well)")
        ax.legend(fontsize=8)
    return fig


def exponents_figure(
    panels: Sequence[Mapping[str, Any]], *, title: str = "Critical exponents"
) -> Figure:
    """Log-log plots of power laws with their fitted slopes.

    **Arguments:**

    - `panels`: one mapping per panel with keys ``"title"``, ``"xlabel"``, ``"ylabel"`` and
      ``"series"``: a list of mappings with ``"x"``, ``"y"``, optional ``"yerr"`` (error bars,
      drawn as ±1 SE), ``"label"``, ``"style"`` (``"line"`` or ``"points"``) and optional
      ``"fit"`` = ``(slope, stderr, intercept)`` drawn as a dashed line
      $e^{c}x^{\\rm slope}$ over the series' x range.
    """
    n = len(panels)
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(4.8 * ncols, 4.0 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        for k, (s, c) in enumerate(zip(panel["series"], _COLORS)):
            x, y = _np(s["x"]), np.abs(_np(s["y"]))
            label = s.get("label")
            if s.get("style", "points") == "line":
                ax.plot(x, y, color=c, lw=1.4, label=label)
            elif s.get("yerr") is not None:
                ax.errorbar(
                    x, y, yerr=_np(s["yerr"]), fmt="o", ms=4, capsize=3, color=c, label=label
                )
            else:
                ax.plot(x, y, "o", ms=4, color=c, label=label)
            if s.get("fit") is not None:
                slope, stderr, icpt = (float(v) for v in s["fit"])
                xf = np.geomspace(x.min(), x.max(), 50)
                ax.plot(
                    xf,
                    np.exp(icpt) * xf**slope,
                    ls="--",
                    color=c,
                    lw=1.0,
                    label=f"fit slope {slope:.4f} ± {stderr:.1e}",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(panel.get("xlabel", "x"))
        ax.set_ylabel(panel.get("ylabel", "y"))
        ax.set_title(panel["title"], fontsize=10)
        ax.legend(fontsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig


def cloning_figure(
    t,
    phi_theory,
    t_mc,
    phi_mc,
    se_mc,
    *,
    t_marks: Mapping[str, float] | None = None,
    threshold: float | None = None,
    title: str = "Cloning probability φ(t): quadrature vs Monte Carlo",
) -> Figure:
    """$\\phi(t)$: the quadrature curve and Monte Carlo points with ±3 SE error bars.

    `t_marks` draws vertical lines (e.g. $t_S$); `threshold` a horizontal line (e.g. 0.7752).
    """
    fig = Figure(figsize=(6.5, 4.3), layout="constrained")
    ax = fig.subplots()
    ax.plot(_np(t), _np(phi_theory), color="k", lw=1.4, label="quadrature")
    ax.errorbar(
        _np(t_mc),
        _np(phi_mc),
        yerr=3 * _np(se_mc),
        fmt="o",
        capsize=4,
        color="C3",
        label="Monte Carlo ± 3 SE (reverse SDE, cloned pairs)",
    )
    for (label, tm), c in zip((t_marks or {}).items(), ("C2", "C1", "C5")):
        ax.axvline(tm, color=c, ls="--", lw=1.2, label=f"{label} = {tm:.4f}")
    if threshold is not None:
        ax.axhline(threshold, color="0.5", ls=":", lw=1.0, label=f"φ = {threshold:.4f}")
    ax.set_xlabel("branch time t (forward, OU)")
    ax.set_ylabel("φ(t) = P(two clones end in the same class)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig
