"""cmra_attention: every backend against an independent float64 softmax, forward and gradients."""

import math

import pytest
import torch
from conftest import rand_attention_inputs

from avattn.functional import cmra_attention, reference_attention, select_backend


def naive_attention(q, ks, vs, masks, scale=None):
    """Per-(batch, head) loops: the most literal transcription, independent of the backends."""
    b, tq, h, d = q.shape
    scale = 1 / math.sqrt(d) if scale is None else scale
    k, v = torch.cat(ks, 1), torch.cat(vs, 1)
    mask = None
    if masks is not None:
        mask = torch.cat([m if m is not None else torch.zeros(k_.shape[:2], dtype=torch.bool) for m, k_ in zip(masks, ks)], 1)
    out = torch.zeros_like(q)
    for bi in range(b):
        keep = torch.ones(k.shape[1], dtype=torch.bool) if mask is None else ~mask[bi]
        if not keep.any():
            continue
        for hi in range(h):
            s = (q[bi, :, hi] @ k[bi, keep, hi].T) * scale
            out[bi, :, hi] = s.softmax(-1) @ v[bi, keep, hi]
    return out


SHAPES = [
    # (b, tq, source lengths, heads, head dim)
    (2, 1, [1], 1, 8),
    (3, 10, [10, 10], 4, 16),
    (2, 7, [3, 11, 5], 2, 8),
    (1, 37, [37], 3, 4),
    (4, 5, [1, 2], 2, 6),
]


@pytest.mark.parametrize("backend", ["reference", "sdpa"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("masked", [False, True])
def test_forward_matches_naive_float64(backend, shape, masked):
    b, tq, lengths, h, d = shape
    masks = ["random" if i % 2 == 0 else None for i in range(len(lengths))] if masked else None
    q, ks, vs, ms = rand_attention_inputs(b, tq, lengths, h, d, masks=masks)
    out = cmra_attention(q, ks, vs, key_padding_masks=ms, backend=backend)
    torch.testing.assert_close(out, naive_attention(q, ks, vs, ms), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", ["reference", "sdpa"])
def test_fully_masked_row_gives_zeros_and_finite_grads(backend):
    q, ks, vs, _ = rand_attention_inputs(3, 4, [5, 2], 2, 8, requires_grad=True)
    masks = [torch.zeros(3, 5, dtype=torch.bool), torch.zeros(3, 2, dtype=torch.bool)]
    masks[0][1] = True
    masks[1][1] = True  # batch row 1: every key padded
    masks[0][2, :3] = True
    out = cmra_attention(q, ks, vs, key_padding_masks=masks, backend=backend)
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    assert out[0].abs().sum() > 0
    out.square().sum().backward()
    for t in [q, *ks, *vs]:
        assert torch.isfinite(t.grad).all()
    assert torch.equal(q.grad[1], torch.zeros_like(q.grad[1]))
    assert torch.equal(vs[0].grad[1], torch.zeros_like(vs[0].grad[1]))
    torch.testing.assert_close(out.detach(), naive_attention(q.detach(), [k.detach() for k in ks], [v.detach() for v in vs], masks))


@pytest.mark.parametrize("backend", ["reference", "sdpa"])
def test_reference_and_sdpa_backends_pass_gradcheck_in_float64(backend):
    q, ks, vs, ms = rand_attention_inputs(2, 3, [2, 3], 2, 4, requires_grad=True, masks=["random", None])

    def fn(q, k0, k1, v0, v1):
        return cmra_attention(q, [k0, k1], [v0, v1], key_padding_masks=ms, backend=backend)

    assert torch.autograd.gradcheck(fn, (q, *ks, *vs))


@pytest.mark.parametrize("shape", SHAPES)
def test_sdpa_gradients_match_reference(shape):
    b, tq, lengths, h, d = shape
    q, ks, vs, ms = rand_attention_inputs(b, tq, lengths, h, d, requires_grad=True, masks=["random"] * len(lengths))
    grads = {}
    for backend in ("reference", "sdpa"):
        out = cmra_attention(q, ks, vs, key_padding_masks=ms, backend=backend)
        grads[backend] = torch.autograd.grad(out.sin().sum(), [q, *ks, *vs])
    for g_ref, g_sdpa in zip(grads["reference"], grads["sdpa"]):
        torch.testing.assert_close(g_sdpa, g_ref, rtol=1e-9, atol=1e-10)


def test_float32_within_twice_torch_error():
    q, ks, vs, ms = rand_attention_inputs(8, 10, [10, 10], 4, 64, masks=["random", None])
    truth = naive_attention(q, ks, vs, ms)
    q32, ks32, vs32 = q.float(), [k.float() for k in ks], [v.float() for v in vs]
    torch_err = (reference_attention(q32, ks32, vs32, ms)[0].double() - truth).abs().max()
    for backend in ("reference", "sdpa"):
        err = (cmra_attention(q32, ks32, vs32, key_padding_masks=ms, backend=backend).double() - truth).abs().max()
        assert err <= 2 * torch_err + 1e-6, (backend, err, torch_err)


def test_returned_weights_are_the_softmax():
    q, ks, vs, ms = rand_attention_inputs(2, 3, [4, 5], 2, 8, masks=["random", None])
    out, w = cmra_attention(q, ks, vs, key_padding_masks=ms, return_weights=True)
    assert w.shape == (2, 2, 3, 9)
    k = torch.cat(ks, 1)
    assert torch.all(w[..., :4].permute(0, 2, 1, 3)[ms[0][:, None, None, :].expand(-1, 3, 2, -1)] == 0)
    row_sums = w.sum(-1)
    all_padded = ms[0].all(1)
    torch.testing.assert_close(row_sums[~all_padded], torch.ones_like(row_sums[~all_padded]))
    torch.testing.assert_close(out, torch.einsum("bhqk,bkhd->bqhd", w, torch.cat(vs, 1)))
    assert k.shape[1] == w.shape[-1]


def test_reference_and_sdpa_backends_apply_a_custom_scale():
    q, ks, vs, _ = rand_attention_inputs(2, 3, [4], 2, 8)
    for backend in ("reference", "sdpa"):
        out = cmra_attention(q, ks, vs, scale=0.7, backend=backend)
        torch.testing.assert_close(out, naive_attention(q, ks, vs, None, scale=0.7))


def test_dropout_is_applied_and_scaled():
    q, ks, vs, _ = rand_attention_inputs(64, 4, [6], 2, 8)
    plain = cmra_attention(q, ks, vs)
    for backend in ("reference", "sdpa"):
        dropped = cmra_attention(q, ks, vs, dropout_p=0.5, backend=backend)
        assert not torch.allclose(dropped, plain)
        # inverted dropout keeps the expectation: the mean over many rows stays close
        assert (dropped.mean() - plain.mean()).abs() < 0.1


def test_auto_picks_sdpa_on_cpu_and_reference_for_weights():
    q, ks, vs, _ = rand_attention_inputs(1, 2, [3], 1, 8)
    assert select_backend("auto", q, ks, vs, None, 0.0, False) == "sdpa"
    assert select_backend("auto", q, ks, vs, None, 0.0, True) == "reference"


def test_forced_backend_explains_refusal(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    q, ks, vs, _ = rand_attention_inputs(1, 2, [3], 1, 16, dtype=torch.float32)
    with pytest.raises(RuntimeError, match="does not return attention weights"):
        cmra_attention(q, ks, vs, backend="sdpa", return_weights=True)
    with pytest.raises(RuntimeError, match="backend 'triton' needs a CUDA tensor"):
        cmra_attention(q, ks, vs, backend="triton")
    with pytest.raises(RuntimeError, match="does not apply attention dropout"):
        cmra_attention(q, ks, vs, backend="triton", dropout_p=0.1)
    with pytest.raises(RuntimeError, match="supports dtypes"):
        cmra_attention(q.double(), [ks[0].double()], [vs[0].double()], backend="triton")
    with pytest.raises(RuntimeError, match="head dims 16..128, got 8"):
        cmra_attention(q[..., :8], [ks[0][..., :8]], [vs[0][..., :8]], backend="triton")
    with pytest.raises(ValueError, match="backend must be one of"):
        cmra_attention(q, ks, vs, backend="flash")


def expected_nan(q, ks, vs):
    """out[b, q, h, d] is NaN iff the query row, any key of (b, h), or any value (b, :, h, d) is NaN.

    Padding never hides a NaN: as in nn.MultiheadAttention, whose mask is added to the scores.
    """
    k_nan = torch.cat(ks, 1).isnan().any(-1).any(1)  # (b, h)
    v_nan = torch.cat(vs, 1).isnan().any(1)  # (b, h, d)
    return q.isnan().any(-1, keepdim=True) | k_nan[:, None, :, None] | v_nan[:, None]


@pytest.mark.parametrize("padding", ["no_masks", "elsewhere", "nan_position", "whole_row"])
@pytest.mark.parametrize("where", ["query", "key", "value", "second_source_value"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_nan_semantics_agree_across_backends(where, padding, dtype):
    q, ks, vs, _ = rand_attention_inputs(3, 4, [5, 3], 2, 8, dtype=dtype)
    target = {"query": q, "key": ks[0], "value": vs[0], "second_source_value": vs[1]}[where]
    target[1, 2, 1, 3] = float("nan")
    masks = [torch.zeros(3, 5, dtype=torch.bool), torch.zeros(3, 3, dtype=torch.bool)]
    masks[0][0, 1] = True
    if padding == "nan_position" and where != "query":
        masks[1 if where == "second_source_value" else 0][1, 2] = True
    if padding == "whole_row":
        masks[0][1], masks[1][1] = True, True
    if padding == "no_masks":
        masks = None
    want = expected_nan(q, ks, vs)
    assert want.any() and not want.all()
    for backend in ("reference", "sdpa"):
        out = cmra_attention(q, ks, vs, key_padding_masks=masks, backend=backend)
        assert torch.equal(out.isnan(), want), backend
    finite_rows = ~want.any(-1).any(-1)  # batch rows and steps untouched by the NaN stay exact
    torch.testing.assert_close(
        cmra_attention(q, ks, vs, key_padding_masks=masks, backend="sdpa")[finite_rows],
        naive_attention(q, ks, vs, masks)[finite_rows],
    )


@pytest.mark.parametrize("backend", ["reference", "sdpa"])
@pytest.mark.parametrize("where", ["query_unmasked", "query", "padded_key_or_value"])
def test_nan_like_multihead_attention(backend, where):
    from avattn import CrossModalRelationAttention

    mha = torch.nn.MultiheadAttention(16, 2, batch_first=True, dtype=torch.float64).eval()
    cmra = CrossModalRelationAttention.from_multihead_attention(mha, backend=backend).eval()
    x, memory = torch.randn(3, 4, 16, dtype=torch.float64), torch.randn(3, 6, 16, dtype=torch.float64)
    mask = torch.zeros(3, 6, dtype=torch.bool)
    mask[:, 4:] = True
    if where.startswith("query"):
        x[1, 2, 5] = float("nan")
    else:
        memory[1, 5, 0] = float("nan")  # a padded step: its key and value both hold NaN after projection
    if where == "query_unmasked":
        mask = None
    with torch.no_grad():
        want, _ = mha(x, memory, memory, key_padding_mask=mask)
        out = cmra(x, [memory], key_padding_masks=None if mask is None else [mask])
    assert torch.equal(out.isnan(), want.isnan())
    assert want.isnan().any()
    torch.testing.assert_close(out[~want.isnan()], want[~want.isnan()])
