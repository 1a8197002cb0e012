"""CMRA, CMRA-F, RelationLayer, ITR, RelationAwareModule and AV interaction in float64."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from layer_equations import lin

import avattn

D = torch.float64


def mha_equation(attn, query, memory_cat, mask=None):
    """Multi-head attention written out: per-head softmax(q k^T / sqrt(d)) v."""
    H, E = attn.num_heads, attn.dim
    q = lin(attn.q_proj, query)
    kv = lin(attn.kv_proj, memory_cat)
    k, v = kv[..., :E], kv[..., E:]
    heads = []
    for h in range(H):
        sl = slice(h * E // H, (h + 1) * E // H)
        s = q[..., sl] @ k[..., sl].transpose(1, 2) / (E // H) ** 0.5
        if mask is not None:
            s = s.masked_fill(mask[:, None, :], float("-inf"))
        heads.append(s.softmax(-1) @ v[..., sl])
    return lin(attn.out_proj, torch.cat(heads, -1))


@pytest.mark.parametrize("lengths", [[1], [10, 10], [4, 7, 3]])
@pytest.mark.parametrize("backend", ["reference", "sdpa"])
def test_cmra_equals_torch_multihead_attention_on_cat(lengths, backend):
    mha = nn.MultiheadAttention(16, 4, batch_first=True, dtype=D).eval()
    cmra = avattn.CrossModalRelationAttention.from_multihead_attention(mha, backend=backend).eval()
    query = torch.randn(3, 5, 16, dtype=D)
    memory = [torch.randn(3, t, 16, dtype=D) for t in lengths]
    masks = [torch.rand(3, t) < 0.3 for t in lengths]
    for m in masks:
        m[:, 0] = False  # nn.MultiheadAttention gives NaN for fully masked rows; ours gives zeros
    cat, cat_mask = torch.cat(memory, 1), torch.cat(masks, 1)
    expected = mha(query, cat, cat, key_padding_mask=cat_mask, need_weights=False)[0]
    torch.testing.assert_close(cmra(query, memory, key_padding_masks=masks), expected)
    torch.testing.assert_close(mha_equation(cmra, query, cat, cat_mask), expected)


def test_cmra_weights_and_per_source_maps():
    cmra = avattn.CrossModalRelationAttention(16, 2, dtype=D)
    q, other = torch.randn(2, 3, 16, dtype=D), torch.randn(2, 7, 16, dtype=D)
    out, maps = cmra(q, [other, q], return_weights=True)
    assert maps.weights.shape == (2, 2, 3, 10) and maps.source_lengths == (7, 3)
    a, b = maps.per_source()
    assert a.shape == (2, 2, 3, 7) and b.shape == (2, 2, 3, 3)
    torch.testing.assert_close(out, cmra(q, [other, q]))


def test_backend_switch_flips_and_agrees():
    torch.manual_seed(0)
    layer = avattn.RelationLayer(32, 4, ffn_dim=64, dtype=D).eval()
    x, m = torch.randn(2, 5, 32, dtype=D), torch.randn(2, 6, 32, dtype=D)
    outs = {}
    for backend in ("reference", "sdpa"):
        layer.attn.backend = backend
        outs[backend] = layer(x, [m, x])
    torch.testing.assert_close(outs["sdpa"], outs["reference"])


def test_feature_concat_cmra_matches_equation():
    fc = avattn.FeatureConcatCMRA(16, 2, num_sources=2, dtype=D)
    q, a = torch.randn(2, 4, 16, dtype=D), torch.randn(2, 4, 16, dtype=D)
    torch.testing.assert_close(fc(q, [a, q]), mha_equation(fc, q, torch.cat([a, q], -1)))
    assert fc.kv_proj.in_features == 32


def relation_layer_equation(layer, x, memory_cat):
    x = F.layer_norm(x + mha_equation(layer.attn, x, memory_cat), (x.shape[-1],), layer.norm1.weight, layer.norm1.bias, layer.norm1.eps)
    if layer.ffn is None:
        return x
    w1, w2 = layer.ffn.net[0], layer.ffn.net[3]
    y = lin(w2, torch.relu(lin(w1, x)))
    return F.layer_norm(x + y, (x.shape[-1],), layer.norm2.weight, layer.norm2.bias, layer.norm2.eps)


@pytest.mark.parametrize("ffn_dim", [48, None])
def test_relation_layer_matches_equation(ffn_dim):
    layer = avattn.RelationLayer(16, 4, ffn_dim=ffn_dim, dtype=D).eval()
    x, m = torch.randn(2, 3, 16, dtype=D), torch.randn(2, 5, 16, dtype=D)
    torch.testing.assert_close(layer(x, [m, x]), relation_layer_equation(layer, x, torch.cat([m, x], 1)))


@pytest.mark.parametrize("num_layers", [0, 1, 3])
def test_itr_matches_equation(num_layers):
    itr = avattn.InternalTemporalRelation(12, 16, num_layers=num_layers, num_heads=2, ffn_dim=24, dtype=D).eval()
    x = torch.randn(2, 7, 12, dtype=D)
    y = lin(itr.proj, x)
    for layer in itr.layers:
        y = relation_layer_equation(layer, y, y)
    torch.testing.assert_close(itr(x), y)


@pytest.mark.parametrize("variant", ["cmra", "self", "co", "feature_concat", "none"])
def test_relation_aware_module_variants(variant):
    ram = avattn.RelationAwareModule(12, 10, 16, variant=variant, num_layers=1, num_heads=2, ffn_dim=24, dtype=D).eval()
    x, other = torch.randn(2, 5, 12, dtype=D), torch.randn(2, 5, 10, dtype=D)
    q = lin(ram.query_proj, x)
    if variant == "none":
        expected = q
    elif variant == "self":
        expected = relation_layer_equation(ram.relation, q, q)
    elif variant == "co":
        expected = relation_layer_equation(ram.relation, q, ram.itr(other))
    elif variant == "cmra":
        expected = relation_layer_equation(ram.relation, q, torch.cat([ram.itr(other), q], 1))
    else:
        expected = relation_layer_equation(ram.relation, q, torch.cat([ram.itr(other), q], -1))
    torch.testing.assert_close(ram(x, other), expected)
    # only what the variant uses is registered: every parameter gets a gradient
    ram.train()
    ram(x, other).sum().backward()
    assert all(p.grad is not None for p in ram.parameters())


@pytest.mark.parametrize("variant", ["cmra", "self", "none"])
def test_av_interaction_variants(variant):
    avi = avattn.AudioVideoInteraction(16, 2, variant=variant, dtype=D).eval()
    v, a = torch.randn(2, 10, 16, dtype=D), torch.randn(2, 10, 16, dtype=D)
    f = v * a
    if variant == "none":
        expected = f
    else:
        memory = torch.cat([a, v], 1) if variant == "cmra" else f
        expected = relation_layer_equation(avi.relation, f, memory)
    torch.testing.assert_close(avi(v, a), expected)


def test_relation_layer_gradcheck_small():
    layer = avattn.RelationLayer(8, 2, ffn_dim=8, dropout=0.0, dtype=D)
    x = torch.randn(1, 3, 8, dtype=D, requires_grad=True)
    m = torch.randn(1, 2, 8, dtype=D, requires_grad=True)
    mask = [torch.tensor([[False, True]]), None]
    assert torch.autograd.gradcheck(lambda x, m: layer(x, [m, x], key_padding_masks=mask), (x, m))
