"""The report's experiments: one module per topic, and this module, the one explicit registry.

Each module exports ``EXPERIMENTS`` (its :class:`gltheory.report.Experiment` values, in report
order) and its own frozen size configuration ``CONFIG`` with ``default()`` and ``quick()``
constructors (``--quick`` picks ``quick()``; ``CONFIG.of(report_config)`` chooses):

- :mod:`~gltheory.experiments.foundation` (:class:`FoundationConfig`): ``critical_times``,
  ``two_point_sde``, ``gaussian_2d``;
- :mod:`~gltheory.experiments.meanfield` (:class:`MeanfieldConfig`): ``meanfield_critical``,
  ``meanfield_exponents``;
- :mod:`~gltheory.experiments.bath` (:class:`BathConfig`): ``bath_exponents``;
- :mod:`~gltheory.experiments.observables` (:class:`CloningConfig`): ``cloning``;
- :mod:`~gltheory.experiments.field` (:class:`FieldConfig`): ``field_gl``;
- :mod:`~gltheory.experiments.criticality` (:class:`CriticalityConfig`): ``criticality``;
- :mod:`~gltheory.experiments.guidance` (:class:`GuidanceConfig`): ``guidance_pulses``;
- :mod:`~gltheory.experiments.thermo` (:class:`ThermoConfig`): ``thermodynamics``;
- :mod:`~gltheory.experiments.nets` (:class:`NetsConfig`): ``trained_network``;
- :mod:`~gltheory.experiments.schedules` (:class:`SchedulesConfig`): ``schedules``;
- :mod:`~gltheory.experiments.exponents` (:class:`ExponentsConfig`): ``exponents``;
- :mod:`~gltheory.experiments.spatial_class` (:class:`SpatialClassConfig`): ``spatial_class``;
- :mod:`~gltheory.experiments.kibble_zurek` (:class:`KibbleZurekConfig`): ``kibble_zurek``.

:data:`EXPERIMENTS` lists them all in the order ``gltheory report`` runs them; to add one,
append it to its module's ``EXPERIMENTS`` (or add a module and list it here). Nothing is
registered by side effect. This package imports the report, the plotting helpers and
matplotlib; ``import gltheory`` does not import it.
"""

from __future__ import annotations

from ..report import Experiment
from . import (
    bath as bath,
    criticality as criticality,
    exponents as exponents,
    field as field,
    foundation as foundation,
    guidance as guidance,
    kibble_zurek as kibble_zurek,
    meanfield as meanfield,
    nets as nets,
    observables as observables,
    schedules as schedules,
    spatial_class as spatial_class,
    thermo as thermo,
)

__all__ = ["EXPERIMENTS", "MODULES", "by_name"]

MODULES = (
    foundation,
    meanfield,
    bath,
    observables,
    field,
    criticality,
    guidance,
    thermo,
    nets,
    schedules,
    exponents,
    spatial_class,
    kibble_zurek,
)
"""The experiment modules, in report order."""

EXPERIMENTS: list[Experiment] = [
    *foundation.EXPERIMENTS,
    *meanfield.EXPERIMENTS,
    *bath.EXPERIMENTS,
    *observables.EXPERIMENTS,
    *field.EXPERIMENTS,
    *criticality.EXPERIMENTS,
    *guidance.EXPERIMENTS,
    *thermo.EXPERIMENTS,
    *nets.EXPERIMENTS,
    *schedules.EXPERIMENTS,
    *exponents.EXPERIMENTS,
    *spatial_class.EXPERIMENTS,
    *kibble_zurek.EXPERIMENTS,
]
"""Every experiment of ``gltheory report``, in the order it runs them."""


def by_name(name: str) -> Experiment:
    """The registered experiment called ``name``.

    **Arguments:**

    - `name`: an experiment name, as ``gltheory report --list`` prints it.

    **Returns:** the :class:`gltheory.report.Experiment`.

    Raises ``ValueError`` naming the allowed names when there is none called ``name``.
    """
    for e in EXPERIMENTS:
        if e.name == name:
            return e
    raise ValueError(
        f"name={name!r} is not a report experiment; allowed: "
        f"{', '.join(e.name for e in EXPERIMENTS)}."
    )
