"""Bad input: a ValueError/TypeError naming the argument and both shapes, before any work."""

import pytest
import torch

import avattn
from avattn.functional import cmra_attention


def qkv(b=2, tq=3, tk=4, h=2, d=8):
    return torch.randn(b, tq, h, d), [torch.randn(b, tk, h, d)], [torch.randn(b, tk, h, d)]


@pytest.mark.parametrize(
    "mutate, exc, pattern",
    [
        (lambda q, k, v, m: (q[0], k, v, m), ValueError, r"query must have 4 dims \(B, Tq, H, Dh\), got shape \(3, 2, 8\)"),
        (lambda q, k, v, m: (q.long(), k, v, m), TypeError, r"query must be a floating tensor"),
        (lambda q, k, v, m: (q, k[0], v, m), TypeError, r"keys must be a list or tuple"),
        (lambda q, k, v, m: (q, [], [], m), ValueError, r"keys must hold at least one tensor"),
        (lambda q, k, v, m: (q, k + k, v, m), ValueError, r"same number of sources, got 2 and 1"),
        (lambda q, k, v, m: (q, [k[0][:1]], v, m), ValueError, r"keys\[0\] must have shape .* = \(2, 4, 2, 8\) .* got \(1, 4, 2, 8\)"),
        (lambda q, k, v, m: (q, k, [v[0][..., :4]], m), ValueError, r"values\[0\] must have shape \(2, 4, 2, 8\) .* got \(2, 4, 2, 4\)"),
        (lambda q, k, v, m: (q, [k[0].double()], v, m), TypeError, r"keys\[0\] must have the query's dtype"),
        (lambda q, k, v, m: (q, k, v, [torch.zeros(2, 5, dtype=torch.bool)]), ValueError, r"key_padding_masks\[0\] must have shape \(B, Tk\) = \(2, 4\), got \(2, 5\)"),
        (lambda q, k, v, m: (q, k, v, [torch.zeros(2, 4)]), TypeError, r"key_padding_masks\[0\] must be a bool tensor"),
        (lambda q, k, v, m: (q, k, v, [None, None]), ValueError, r"one entry .* per source: 1, got 2"),
    ],
)
def test_attention_input_errors(mutate, exc, pattern):
    q, k, v, m = mutate(*qkv(), None)
    with pytest.raises(exc, match=pattern):
        cmra_attention(q, k, v, key_padding_masks=m)


@pytest.mark.parametrize("kwargs, pattern", [({"scale": -1.0}, "scale must be"), ({"dropout_p": 1.0}, r"dropout_p must be in \[0, 1\)")])
def test_option_errors(kwargs, pattern):
    q, k, v = qkv()
    with pytest.raises(ValueError, match=pattern):
        cmra_attention(q, k, v, **kwargs)


def test_layer_errors_name_argument_and_shapes():
    agsca = avattn.AGSCA(16, 8)
    v, a = torch.randn(2, 3, 4, 4, 16), torch.randn(2, 3, 8)
    with pytest.raises(ValueError, match=r"visual must have 16 channels last.*got \(2, 3, 4, 4, 12\)"):
        agsca(torch.randn(2, 3, 4, 4, 12), a)
    with pytest.raises(ValueError, match=r"audio must have shape \(B, T, 8\), got \(2, 3, 9\)"):
        agsca(v, torch.randn(2, 3, 9))
    with pytest.raises(ValueError, match=r"audio must share \(B, T\) = \(2, 3\) with visual, got \(2, 4, 8\)"):
        agsca(v, torch.randn(2, 4, 8))
    with pytest.raises(ValueError, match=r"visual must have shape \(B, T, H, W, 16\) or \(B, T, N, 16\), got \(2, 16\)"):
        agsca(torch.randn(2, 16), a)
    with pytest.raises(TypeError, match=r"visual must be a floating tensor"):
        agsca(v.long(), a)

    cmra = avattn.CrossModalRelationAttention(16, 2)
    q = torch.randn(2, 3, 16)
    with pytest.raises(ValueError, match=r"memory\[1\] must have shape \(B, T, 16\), got \(2, 5, 8\)"):
        cmra(q, [q, torch.randn(2, 5, 8)])
    with pytest.raises(ValueError, match=r"memory\[0\] must have batch size 2 like query, got shape \(3, 5, 16\)"):
        cmra(q, [torch.randn(3, 5, 16)])
    with pytest.raises(TypeError, match=r"memory must be a list or tuple of tensors, got Tensor"):
        cmra(q, q)
    with pytest.raises(ValueError, match=r"num_heads must divide dim=10, got num_heads=3"):
        avattn.CrossModalRelationAttention(10, 3)

    fcat = avattn.FeatureConcatCMRA(16, 2)
    with pytest.raises(ValueError, match=r"share one length"):
        fcat(q, [q, torch.randn(2, 4, 16)])
    with pytest.raises(ValueError, match=r"num_sources=2 tensors, got 1"):
        fcat(q, [q])

    ram = avattn.RelationAwareModule(8, 12, 16, num_heads=2, ffn_dim=32)
    with pytest.raises(ValueError, match=r"other must share \(B, T\) = \(2, 3\) with x, got \(2, 5, 12\)"):
        ram(torch.randn(2, 3, 8), torch.randn(2, 5, 12))
    with pytest.raises(ValueError, match=r"variant must be one of"):
        avattn.RelationAwareModule(8, 12, 16, variant="cross")
    with pytest.raises(ValueError, match=r"variant must be one of"):
        avattn.AudioVideoInteraction(16, 2, variant="cross")
    with pytest.raises(ValueError, match=r"memory_layout must be 'time' or 'feature'"):
        avattn.RelationLayer(16, 2, memory_layout="space")


def test_loss_and_metric_errors():
    s, c = torch.randn(2, 10), torch.randn(2, 28)
    with pytest.raises(ValueError, match=r"segment_labels must have shape \(B, T\) = \(2, 10\), got \(2, 9\)"):
        avattn.supervised_localization_loss(s, c, torch.zeros(2, 9, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    with pytest.raises(TypeError, match=r"video_labels must be an integer tensor"):
        avattn.supervised_localization_loss(s, c, torch.zeros(2, 10, dtype=torch.long), torch.zeros(2))
    with pytest.raises(ValueError, match=r"predictions and segment_labels must have the same shape"):
        avattn.segment_accuracy(torch.zeros(2, 10), torch.zeros(2, 9))
    with pytest.raises(ValueError, match=r"class_logits must have batch size 2"):
        avattn.predict_segments(s, torch.randn(3, 28))
