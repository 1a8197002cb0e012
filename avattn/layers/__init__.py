"""avattn layers: one concept per file."""

from .agsca import AGSCA, AGSCAWeights, AudioGuidedChannelAttention, AudioGuidedSpatialAttention
from .agva import AGVA, SpatialAverage
from .av_interaction import INTERACTION_VARIANTS, AudioVideoInteraction
from .cmra import AttentionMaps, CrossModalRelationAttention, FeatureConcatCMRA
from .dropout import BitDropout, bit_dropout
from .heads import SupervisedLocalizationHead, SupervisedOutput, WeakLocalizationHead, WeakOutput
from .relation_aware import CMRA_VARIANTS, RelationAwareModule
from .relation_layer import FeedForward, RelationLayer
from .temporal_relation import InternalTemporalRelation

__all__ = [
    "AGSCA",
    "AGSCAWeights",
    "AGVA",
    "AttentionMaps",
    "AudioGuidedChannelAttention",
    "AudioGuidedSpatialAttention",
    "AudioVideoInteraction",
    "BitDropout",
    "CMRA_VARIANTS",
    "CrossModalRelationAttention",
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
]
