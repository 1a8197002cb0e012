"""avattn: audio-visual attention layers for PyTorch (the layers of CMRAN, AVEL and PSP).

Works without Triton and without a GPU; the fused Triton kernels are used only where they can serve.
Choices of the options are public tuples: ``avattn.functional.BACKENDS``, ``CMRA_VARIANTS``,
``INTERACTION_VARIANTS``, ``PSP_VARIANTS``, ``DROPOUT_IMPLS``. A model built from these layers checks
its own inputs with ``check_input_dtypes`` and its labels with ``check_label_range``.
"""

from . import functional
from ._checks import check_input_dtypes, check_label_range
from ._deprecation import module_getattr
from ._version import __version__
from .layers import *  # noqa: F403
from .layers import __all__ as _layers_all
from .losses import (
    BACKGROUND,
    avps_loss,
    avps_target,
    segment_cross_entropy,
    segment_soft_margin_loss,
    soft_target_bce_loss,
    supervised_localization_loss,
    weak_localization_loss,
)
from .metrics import predict_segment_classes, predict_segments, segment_accuracy

__all__ = [
    "BACKGROUND",
    "__version__",
    "check_input_dtypes",
    "check_label_range",
    "functional",
    "predict_segments",
    "segment_accuracy",
    "supervised_localization_loss",
    "weak_localization_loss",
    *_layers_all,
    # AVEL and PSP
    "avps_loss",
    "avps_target",
    "predict_segment_classes",
    "segment_cross_entropy",
    "segment_soft_margin_loss",
    "soft_target_bce_loss",
]

# Old names, for one release (DeprecationWarning naming the new one).
__getattr__ = module_getattr("avattn", {"AttentionMaps": ("AttentionWeights", AttentionWeights)})  # noqa: F405
