r"""Classifier-free guidance: class-conditional data, guidance forms, pulses at the critical time,
the class susceptibility of a pulse, a physics-aware sampler and learned pulse timing.

Ambrogioni, arXiv:2603.20092; Lehman Pavasovic et al., arXiv:2502.07849; Kynkäänniemi et al., arXiv:2404.07724. The susceptibility and pulse-response results are derived in this package, not taken from a paper.

The package has four layers, each importing only the ones above it in this list:

- :mod:`gltheory.guidance.classes`: class-conditional data with exact scores
  (:class:`ClassConditional`, :class:`ClassLattice`, :class:`ClassScore`);
- :mod:`gltheory.guidance.schedules`: guidance forms (:class:`ConstantCFG`, :class:`IntervalCFG`,
  :class:`StepIntervalCFG`, :class:`Pulse`, :class:`PowerLawCFG`), the guided score
  :class:`GuidedScore`, the EDM sampler with guidance :func:`edm_guided_sample`, and the
  perturbation size of a pulse (:func:`guidance_displacement`, :func:`normalise_pulse`);
- :mod:`gltheory.guidance.theory`: the pulse response of two clusters
  (:func:`guidance_susceptibility_theory`, :func:`pulse_response_theory`,
  :func:`pulse_alignment_theory`, :func:`optimal_pulse_centre`) and the exact mean of the
  learned-pulse objective (:func:`pulse_objective_quadrature`,
  :func:`discrete_optimal_pulse_centre`);
- :mod:`gltheory.guidance.measure`: Monte Carlo measurements (:func:`pulse_alignment`,
  :func:`pulse_scan`, :func:`alignment_curve_peak`, :func:`physics_aware_sample`,
  :func:`learn_pulse`).

Every public name is re-exported here: ``gl.guidance.Pulse``, ``gl.guidance.pulse_scan``, ...
"""

from .classes import (
    ClassConditional as ClassConditional,
    ClassLattice as ClassLattice,
    ClassScore as ClassScore,
    class_deltas as class_deltas,
    class_gaussians as class_gaussians,
    class_lattice as class_lattice,
    patch_features as patch_features,
    two_class_deltas as two_class_deltas,
    two_class_gaussians as two_class_gaussians,
)
from .measure import (
    AlignmentEstimate as AlignmentEstimate,
    LearnedPulse as LearnedPulse,
    PhysicsAwareResult as PhysicsAwareResult,
    PulseScan as PulseScan,
    alignment_curve_peak as alignment_curve_peak,
    learn_pulse as learn_pulse,
    paired_difference as paired_difference,
    physics_aware_sample as physics_aware_sample,
    pulse_alignment as pulse_alignment,
    pulse_objective_samples as pulse_objective_samples,
    pulse_scan as pulse_scan,
    random_pulse_centres as random_pulse_centres,
)
from .schedules import (
    AbstractGuidance as AbstractGuidance,
    ConstantCFG as ConstantCFG,
    GuidedScore as GuidedScore,
    IntervalCFG as IntervalCFG,
    PowerLawCFG as PowerLawCFG,
    Pulse as Pulse,
    StepIntervalCFG as StepIntervalCFG,
    count_guided_evaluations as count_guided_evaluations,
    edm_guided_sample as edm_guided_sample,
    edm_sigmas as edm_sigmas,
    guidance_displacement as guidance_displacement,
    guidance_scale as guidance_scale,
    guidance_scale_at_origin as guidance_scale_at_origin,
    guided_denoiser as guided_denoiser,
    normalise_pulse as normalise_pulse,
)
from .theory import (
    discrete_optimal_pulse_centre as discrete_optimal_pulse_centre,
    guidance_susceptibility_theory as guidance_susceptibility_theory,
    optimal_pulse_centre as optimal_pulse_centre,
    pulse_alignment_theory as pulse_alignment_theory,
    pulse_objective_quadrature as pulse_objective_quadrature,
    pulse_response_theory as pulse_response_theory,
    two_cluster_guidance_scale as two_cluster_guidance_scale,
)
