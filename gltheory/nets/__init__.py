r"""Trained score networks (equinox + optax) measured with the tools of the exact theory.

Ambrogioni, arXiv:2603.20092 (detecting $t_c$ in a trained model) and Kamb & Ganguli, arXiv:2412.20292 (the patch machines).
Three layers, each importing only the ones before it:

1. :mod:`gltheory.nets.models`: denoiser networks $F_\theta(\tilde x,\lambda)$ of one lattice
   image conditioned on the log-SNR (:class:`ConvDenoiser`, :class:`UNet`,
   :class:`MLPDenoiser`), :class:`ScoreNetwork` (a network as a score $s=(a_tD-x)/b_t^2$ of
   any process) and the best linear (Wiener) denoiser :func:`linear_denoiser`; their training
   sets come from :mod:`gltheory.nets.datasets` (:func:`digits_images`).
2. :mod:`gltheory.nets.training`: denoising score matching with optax (:func:`train`,
   :class:`TrainConfig`, checkpoints that resume bit-identically) and the losses
   (:func:`dsm_loss`, :func:`denoising_loss`, :func:`linear_denoiser_loss`).
3. :mod:`gltheory.nets.measure`: the network against the patch machines along its own DDIM
   trajectories (:func:`compare_with_machines`) and its critical time against the patch
   theory and the data spectrum (:func:`score_criticality`, :func:`data_critical_time`).

Everything is **[DERIVED]** for this project; the networks are small and CPU-sized.
"""

from . import datasets as datasets, measure as measure, models as models, training as training
from .datasets import digits_images as digits_images
from .measure import (
    MachineComparison as MachineComparison,
    NetworkCriticality as NetworkCriticality,
    compare_with_machines as compare_with_machines,
    data_critical_time as data_critical_time,
    score_criticality as score_criticality,
)
from .models import (
    AbstractDenoiserNet as AbstractDenoiserNet,
    ConvDenoiser as ConvDenoiser,
    MLPDenoiser as MLPDenoiser,
    ScoreNetwork as ScoreNetwork,
    UNet as UNet,
    linear_denoiser as linear_denoiser,
    log_snr_features as log_snr_features,
)
from .training import (
    TrainConfig as TrainConfig,
    TrainResult as TrainResult,
    TrainState as TrainState,
    denoising_loss as denoising_loss,
    dsm_loss as dsm_loss,
    init_train_state as init_train_state,
    linear_denoiser_loss as linear_denoiser_loss,
    load_checkpoint as load_checkpoint,
    make_optimizer as make_optimizer,
    save_checkpoint as save_checkpoint,
    train as train,
)

__all__ = [
    "AbstractDenoiserNet",
    "ConvDenoiser",
    "UNet",
    "MLPDenoiser",
    "ScoreNetwork",
    "log_snr_features",
    "linear_denoiser",
    "digits_images",
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
    "MachineComparison",
    "compare_with_machines",
    "NetworkCriticality",
    "score_criticality",
    "data_critical_time",
]
