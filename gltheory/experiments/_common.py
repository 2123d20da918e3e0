r"""Helpers shared by the report experiments: the exact-score callable, exact forward samples,
the two-cluster mixture, a variance with its standard error, and the size-configuration base.

The reverse runs of the experiments start from the **exact** forward marginal $p_T$ (a forward
sample $a_Ty+b_Tz$), so the only approximations measured are the time discretisation and the
Monte Carlo error.
"""

from __future__ import annotations

import math
from typing import Self

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..data import AbstractData, GaussianMixture
from ..processes import AbstractProcess
from ..report import ReportConfig
from ..scores import score

__all__ = [
    "Sizes",
    "ExactScore",
    "Moments1D",
    "variance_and_se",
    "forward_sample",
    "two_cluster_mixture",
    "fmt_t",
]


class Sizes:
    """Base of the experiment modules' size configurations (frozen dataclasses).

    A subclass defines :meth:`default` (the normal report) and :meth:`quick` (``--quick``);
    :meth:`of` picks one from a :class:`gltheory.report.ReportConfig`.
    """

    @classmethod
    def default(cls) -> Self:
        """The sizes of the normal report."""
        return cls()

    @classmethod
    def quick(cls) -> Self:
        """The sizes of ``gltheory report --quick`` (the normal ones unless overridden)."""
        return cls.default()

    @classmethod
    def of(cls, config: ReportConfig) -> Self:
        """:meth:`quick` when ``config.quick``, else :meth:`default`."""
        return cls.quick() if config.quick else cls.default()


class ExactScore(eqx.Module):
    """``score_fn(x, t)`` for the sampler; a pytree, so new data values reuse the compilation."""

    data: AbstractData
    process: AbstractProcess

    def __call__(self, x, t):
        return score(self.data, self.process, x, t)


class Moments1D(eqx.Module):
    """``observe(x, t)`` for 1-D ensembles: moments, the fraction with x > 0, a few paths."""

    n_show: int = eqx.field(static=True)

    def __call__(self, x, t):
        x1 = x[:, 0]
        n = x1.shape[0]
        mean = jnp.mean(x1)
        dev = x1 - mean
        m2 = jnp.mean(dev**2)
        return {
            "mean": mean,
            "var": m2 * n / (n - 1),
            "m2": m2,
            "m4": jnp.mean(dev**4),
            "frac_pos": jnp.mean(x1 > 0),
            "head": x1[: self.n_show],
        }


def variance_and_se(x) -> tuple[float, float]:
    """Unbiased sample variance of ``x`` (1-D) and its SE $\\sqrt{(m_4-m_2^2)/n}$.

    The first-order (delta-method) SE; it degenerates for a nearly two-point law
    ($m_4\\approx m_2^2$, e.g. $\\pm1$ data at $t\\to0$), which is why the variance rows are
    taken at times with substantial Gaussian noise.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    dev = x - x.mean()
    m2 = np.mean(dev**2)
    m4 = np.mean(dev**4)
    return float(m2 * n / (n - 1)), float(math.sqrt(max(m4 - m2**2, 0.0) / n))


def forward_sample(data: AbstractData, process: AbstractProcess, key, n: int, t) -> jax.Array:
    """Exact samples of the forward marginal $p_t$: $a_ty+b_tz$, shape ``(n, *event)``."""
    return _forward_sample_jit(
        data, process, key, int(n), jnp.asarray(t, dtype=jnp.result_type(float))
    )


@eqx.filter_jit
def _forward_sample_jit(data, process, key, n, t):
    ky, kz = jax.random.split(key)
    y = data.sample(ky, n)
    z = jax.random.normal(kz, y.shape, dtype=jnp.result_type(float))
    return process.a(t) * y + process.b(t) * z


def two_cluster_mixture(d: int, var: float = 1.0) -> tuple[GaussianMixture, np.ndarray]:
    """$\\tfrac12\\mathcal N(m, {\\rm var}\\,I) + \\tfrac12\\mathcal N(-m, {\\rm var}\\,I)$ with
    $m = (1,\\dots,1)$; returns ``(data, m)``."""
    m = np.ones(d)
    return GaussianMixture(np.stack([m, -m]), np.array([var, var])), m


def fmt_t(t: float) -> str:
    """A time in row names (``%g``)."""
    return f"{t:g}"
