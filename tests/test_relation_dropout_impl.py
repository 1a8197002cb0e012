"""dropout_impl="bit" in the relation layers: BitDropout where nn.Dropout was, the same math otherwise."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import avattn

D = torch.float64


def _layers(dropout, impl):
    return {
        "relation": avattn.RelationLayer(16, 4, ffn_dim=24, dropout=dropout, dropout_impl=impl, dtype=D),
        "interaction": avattn.AudioVideoInteraction(16, 2, dropout=dropout, dropout_impl=impl, dtype=D),
        "itr": avattn.InternalTemporalRelation(12, 16, num_layers=2, ffn_dim=24, dropout=dropout, dropout_impl=impl,
                                               dtype=D),
        "relation_aware": avattn.RelationAwareModule(12, 8, 16, ffn_dim=24, num_layers=1, dropout=dropout,
                                                     dropout_impl=impl, dtype=D),
    }


def _call(name, layer, x16, x12, x8):
    if name == "relation":
        return layer(x16, [x16, x16[:, :1]])
    if name == "interaction":
        return layer(x16, x16.flip(1))
    if name == "itr":
        return layer(x12)
    return layer(x12, x8)


@pytest.mark.parametrize("name", ["relation", "interaction", "itr", "relation_aware"])
def test_bit_equals_torch_in_float64_with_p0(name):
    torch_layer = _layers(0.0, "torch")[name].train()
    bit_layer = _layers(0.0, "bit")[name].train()
    bit_layer.load_state_dict(torch_layer.state_dict())
    n_torch = sum(type(m) is nn.Dropout for m in torch_layer.modules())
    assert n_torch > 0 and sum(type(m) is nn.Dropout for m in bit_layer.modules()) == 0
    assert sum(isinstance(m, avattn.BitDropout) for m in bit_layer.modules()) == n_torch  # one for one
    x16, x12, x8 = (torch.randn(3, 5, c, dtype=D, requires_grad=True) for c in (16, 12, 8))
    a, b = _call(name, torch_layer, x16, x12, x8), _call(name, bit_layer, x16, x12, x8)
    assert torch.equal(a, b)
    g = torch.randn_like(a)
    ga = torch.autograd.grad(a, [x16, x12, x8, *torch_layer.parameters()], g, allow_unused=True)
    gb = torch.autograd.grad(b, [x16, x12, x8, *bit_layer.parameters()], g, allow_unused=True)
    for u, v in zip(ga, gb):
        assert (u is None and v is None) or torch.equal(u, v)


def test_relation_layer_bit_masks_have_the_dropout_distribution():
    """The feed-forward's BitDropout sees a positive hidden map: its zeros are the mask, its rest x/(1-p)."""
    p = 0.3
    layer = avattn.RelationLayer(16, 4, ffn_dim=4096, dropout=p, dropout_impl="bit", dtype=D).train()
    seen = {}
    drop = layer.ffn.net[2]
    assert isinstance(drop, avattn.BitDropout) and isinstance(layer.drop, avattn.BitDropout)
    drop.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0], y=out))
    layer(torch.randn(4, 9, 16, dtype=D), [torch.randn(4, 9, 16, dtype=D)])
    x, y = seen["x"], seen["y"]
    positive = x > 0  # ReLU output: zeros before dropout are not drops
    kept = (y != 0)[positive]
    n = kept.numel()
    assert abs(kept.double().mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    assert torch.equal(y[y != 0], x[y != 0] * (1 / (1 - p)))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_bit_dropout_scales_as_torch_dropout_in_each_dtype(dtype):
    """Kept elements are x * (1/(1-p) rounded to x's dtype), bit for bit what F.dropout gives."""
    x = torch.randn(20000).to(dtype)
    p = 0.1
    a, b = avattn.bit_dropout(x, p), F.dropout(x, p)
    both = (a != 0) & (b != 0)
    assert both.sum() > 10000
    assert torch.equal(a[both], b[both])


def test_relation_layer_bit_compiles_fullgraph():
    torch._dynamo.reset()
    layer = avattn.RelationLayer(16, 4, ffn_dim=24, dropout=0.2, dropout_impl="bit", backend="reference").train()
    x = torch.randn(2, 5, 16)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    y = compiled(x, [x])
    y.sum().backward()
    assert y.shape == x.shape and torch.isfinite(y).all()
    layer.eval()
    torch.testing.assert_close(compiled(x, [x]), layer(x, [x]))


@pytest.mark.parametrize("cls", [avattn.RelationLayer, avattn.InternalTemporalRelation, avattn.AudioVideoInteraction,
                                 avattn.RelationAwareModule, avattn.FeedForward])
def test_bad_dropout_impl_names_the_argument(cls):
    args = {avattn.InternalTemporalRelation: (8, 16), avattn.RelationAwareModule: (8, 8, 16),
            avattn.FeedForward: (16, 32)}.get(cls, (16, 4))
    with pytest.raises(ValueError, match=r"dropout_impl must be one of \('bit', 'torch'\), got 'fast'"):
        cls(*args, dropout_impl="fast")
