"""avattn layers: one concept per file."""

from .._deprecation import module_getattr
from .agsca import AGSCA, AGSCAWeights, AudioGuidedChannelAttention, AudioGuidedSpatialAttention
from .agva import AGVA, SpatialAverage
from .av_interaction import INTERACTION_VARIANTS, AudioVideoInteraction
from .bilstm import BiLSTMEncoder
from .cmra import AttentionWeights, CrossModalRelationAttention, FeatureConcatCMRA
from .dmrn import DMRN
from .dropout import DROPOUT_IMPLS, BitDropout, bit_dropout
from .fused_visual import fused_projected_agsca
from .heads import SupervisedLocalizationHead, SupervisedOutput, WeakLocalizationHead, WeakOutput
from .psp import PSP_VARIANTS, PositiveSamplePropagation, PSPOutput, PSPWeights
from .relation_aware import CMRA_VARIANTS, RelationAwareModule
from .relation_layer import FeedForward, RelationLayer
from .segment_classifier import SegmentClassifier
from .temporal_relation import InternalTemporalRelation
from .temporal_weighting import TemporalWeightingHead, WeightedSegmentOutput

__all__ = [
    "AGSCA",
    "AGSCAWeights",
    "AGVA",
    "AttentionWeights",
    "AudioGuidedChannelAttention",
    "AudioGuidedSpatialAttention",
    "AudioVideoInteraction",
    "BitDropout",
    "CMRA_VARIANTS",
    "CrossModalRelationAttention",
    "DROPOUT_IMPLS",
    "FeatureConcatCMRA",
    "FeedForward",
    "INTERACTION_VARIANTS",
    "InternalTemporalRelation",
    "RelationAwareModule",
    "RelationLayer",
    "SpatialAverage",
    "SupervisedLocalizationHead",
    "SupervisedOutput",
    "WeakLocalizationHead",
    "WeakOutput",
    "bit_dropout",
    "fused_projected_agsca",
    # AVEL and PSP
    "BiLSTMEncoder",
    "DMRN",
    "PSP_VARIANTS",
    "PSPOutput",
    "PSPWeights",
    "PositiveSamplePropagation",
    "SegmentClassifier",
    "TemporalWeightingHead",
    "WeightedSegmentOutput",
]

# Old names, for one release (DeprecationWarning naming the new one).
__getattr__ = module_getattr("avattn.layers", {"AttentionMaps": ("AttentionWeights", AttentionWeights)})
