"""One small instance and matching inputs per public layer, for tests that sweep every layer.

``LAYERS[name] = (make, inputs)``: ``make(**factory_kw)`` builds the layer (``device``/``dtype``
passed on), ``inputs(batch, **tensor_kw)`` returns its positional forward arguments with batch size
``batch`` (``device``/``dtype`` passed on). A new public layer without an entry here fails
``test_layers_public_api.py::test_every_public_layer_has_a_sweep_case``.
"""

import torch

import avattn


def _seq(b, t, d, **kw):
    return torch.randn(b, t, d, **kw)


def _visual(b, **kw):
    return torch.rand(b, 3, 4, 4, 16, **kw), torch.rand(b, 3, 8, **kw)


LAYERS = {
    "AGSCA": (lambda **kw: avattn.AGSCA(16, 8, hidden_dim=8, **kw), _visual),
    "AudioGuidedChannelAttention": (lambda **kw: avattn.AudioGuidedChannelAttention(16, 8, **kw), _visual),
    "AudioGuidedSpatialAttention": (lambda **kw: avattn.AudioGuidedSpatialAttention(16, 8, hidden_dim=8, **kw), _visual),
    "AGVA": (lambda **kw: avattn.AGVA(16, 8, hidden_dim=8, attention_dim=16, **kw), _visual),
    "SpatialAverage": (lambda **kw: avattn.SpatialAverage(16, 8, **kw), _visual),
    "CrossModalRelationAttention": (
        lambda **kw: avattn.CrossModalRelationAttention(16, 2, **kw),
        lambda b, **kw: (_seq(b, 3, 16, **kw), [_seq(b, 5, 16, **kw), _seq(b, 3, 16, **kw)]),
    ),
    "FeatureConcatCMRA": (
        lambda **kw: avattn.FeatureConcatCMRA(16, 2, **kw),
        lambda b, **kw: (_seq(b, 3, 16, **kw), [_seq(b, 4, 16, **kw), _seq(b, 4, 16, **kw)]),
    ),
    "RelationLayer": (
        lambda **kw: avattn.RelationLayer(16, 2, ffn_dim=32, **kw),
        lambda b, **kw: (_seq(b, 3, 16, **kw), [_seq(b, 4, 16, **kw)]),
    ),
    "FeedForward": (lambda **kw: avattn.FeedForward(16, 32, **kw), lambda b, **kw: (_seq(b, 3, 16, **kw),)),
    "InternalTemporalRelation": (
        lambda **kw: avattn.InternalTemporalRelation(12, 16, num_heads=2, ffn_dim=32, **kw),
        lambda b, **kw: (_seq(b, 5, 12, **kw),),
    ),
    "RelationAwareModule": (
        lambda **kw: avattn.RelationAwareModule(12, 10, 16, num_heads=2, ffn_dim=32, **kw),
        lambda b, **kw: (_seq(b, 5, 12, **kw), _seq(b, 5, 10, **kw)),
    ),
    "AudioVideoInteraction": (
        lambda **kw: avattn.AudioVideoInteraction(16, 2, **kw),
        lambda b, **kw: (_seq(b, 5, 16, **kw), _seq(b, 5, 16, **kw)),
    ),
    "SupervisedLocalizationHead": (
        lambda **kw: avattn.SupervisedLocalizationHead(16, 28, **kw), lambda b, **kw: (_seq(b, 5, 16, **kw),)
    ),
    "WeakLocalizationHead": (
        lambda **kw: avattn.WeakLocalizationHead(16, 29, **kw), lambda b, **kw: (_seq(b, 5, 16, **kw),)
    ),
    "BiLSTMEncoder": (lambda **kw: avattn.BiLSTMEncoder(12, 8, **kw), lambda b, **kw: (_seq(b, 5, 12, **kw),)),
    "DMRN": (lambda **kw: avattn.DMRN(16, **kw), lambda b, **kw: (_seq(b, 5, 16, **kw), _seq(b, 5, 16, **kw))),
    "PositiveSamplePropagation": (
        lambda **kw: avattn.PositiveSamplePropagation(16, **kw),
        lambda b, **kw: (_seq(b, 5, 16, **kw), _seq(b, 5, 16, **kw)),
    ),
    "SegmentClassifier": (lambda **kw: avattn.SegmentClassifier(16, 29, **kw), lambda b, **kw: (_seq(b, 5, 16, **kw),)),
    "TemporalWeightingHead": (
        lambda **kw: avattn.TemporalWeightingHead(29, **kw), lambda b, **kw: (_seq(b, 5, 29, **kw),)
    ),
    "BitDropout": (lambda **kw: avattn.BitDropout(0.5), lambda b, **kw: (_seq(b, 5, 16, **kw),)),
}


def tensors(out) -> list[torch.Tensor]:
    """The tensors of a layer's output, nested named tuples and lists flattened, None skipped."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for item in out for t in tensors(item)]
    return []
