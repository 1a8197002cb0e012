"""PositiveSamplePropagation against a float64 transcription with explicit loops over videos and rows.

Axis legend: B batch, T segments (visual t, audio s), E feature width.
"""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from layer_equations import SHAPES, D, grads, rand

import avattn


def psp_equations(m, v, a, *, renormalize, threshold, fc, drop=lambda x: x, eps=1e-8):
    """The PSP module with explicit loops over videos and rows; ``drop`` is applied in the reference's
    order (v1, v2, a1, a2, then the two output projections)."""

    def branch(w, x):
        return drop(torch.relu(x @ w.T))

    v1, v2 = branch(m.visual_value.weight, v), branch(m.visual_query.weight, v)
    a1, a2 = branch(m.audio_key.weight, a), branch(m.audio_value.weight, a)
    B, T, E = v.shape

    def prune(row):
        beta = row / (row.sum() + eps)
        gamma = torch.where(beta > threshold, beta, torch.zeros_like(beta))
        return gamma / (gamma.sum() + eps) if renormalize else gamma

    v_new, a_new, g_va, g_av = [], [], [], []
    for b in range(B):
        S = torch.stack(
            [torch.stack([torch.relu(v2[b, t] @ a1[b, s] / math.sqrt(E)) for s in range(T)]) for t in range(T)]
        )
        gva = torch.stack([prune(S[t, :]) for t in range(T)])  # row: visual t over audio s
        gav = torch.stack([prune(S[:, s]) for s in range(T)])  # row: audio s over visual t
        v_new.append(v[b] + gva @ a2[b])
        a_new.append(a[b] + gav @ v1[b])
        g_va.append(gva)
        g_av.append(gav)
    vp, ap = torch.stack(v_new), torch.stack(a_new)
    if fc:
        vp, ap = branch(m.visual_out.weight, vp), branch(m.audio_out.weight, ap)

    def ln(x):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-6) * m.norm.weight + m.norm.bias

    vp, ap = ln(vp), ln(ap)
    return (vp + ap) * 0.5, vp, ap, torch.stack(g_va), torch.stack(g_av)


def perturbed_psp(dim, **kw):
    m = avattn.PositiveSamplePropagation(dim, dtype=D, **kw)
    with torch.no_grad():  # LayerNorm's affine parameters off their identity init, so they count
        m.norm.weight.normal_(1.0, 0.3)
        m.norm.bias.normal_(0.0, 0.3)
    return m


@pytest.mark.parametrize("B,T", SHAPES)
@pytest.mark.parametrize(
    "variant,renormalize,fc",
    [("supervised", True, True), ("weak", False, False), ("weak", True, False), ("supervised", False, True)],
)
def test_psp_matches_equations(B, T, variant, renormalize, fc):
    m = perturbed_psp(8, variant=variant, renormalize=renormalize).eval()
    assert m.threshold == {"supervised": 0.099, "weak": 0.095}[variant]
    v, a = rand(B, T, 8), rand(B, T, 8)
    (fused, vp, ap), (g_va, g_av) = m(v, a, return_weights=True)
    ref = psp_equations(m, v, a, renormalize=renormalize, threshold=m.threshold, fc=fc)
    for got, want in zip((fused, vp, ap, g_va, g_av), ref, strict=True):
        torch.testing.assert_close(got, want)
    seed = torch.randn_like(fused)
    params = list(m.parameters())
    for g, r in zip(grads(fused, [v, a, *params], seed), grads(ref[0], [v, a, *params], seed), strict=True):
        torch.testing.assert_close(g, r)


@pytest.mark.parametrize("variant", ["supervised", "weak"])
def test_psp_training_dropout_in_reference_order(variant):
    """In training the same dropout masks (same seed, same call order and shapes) give the same result:
    the affinity, hence the pruning, is computed from dropped-out branches."""
    m = perturbed_psp(8, variant=variant, dropout=0.3).train()
    v, a = rand(3, 10, 8), rand(3, 10, 8)
    torch.manual_seed(7)
    out = m(v, a)
    torch.manual_seed(7)
    ref = psp_equations(
        m,
        v,
        a,
        renormalize=m.renormalize,
        threshold=m.threshold,
        fc=variant == "supervised",
        drop=lambda x: F.dropout(x, 0.3),
    )
    torch.testing.assert_close(out.fused, ref[0])
    torch.testing.assert_close(out.fused, (out.visual + out.audio) / 2)
    assert not torch.allclose(out.fused, m.eval()(v, a).fused)


def test_psp_keeps_only_weights_above_threshold_and_renormalized_rows_sum_to_one():
    m = avattn.PositiveSamplePropagation(16, variant="weak", threshold=0.12, dtype=D).eval()
    _, (g_va, g_av) = m(rand(3, 10, 16, grad=False), rand(3, 10, 16, grad=False), return_weights=True)
    for g in (g_va, g_av):
        assert ((g == 0) | (g > 0.12)).all()  # without renormalisation the kept entries are the beta > tau
        assert (g.sum(-1) <= 1 + 1e-12).all()
    m.renormalize = True
    _, (g_va, _) = m(rand(3, 10, 16, grad=False), rand(3, 10, 16, grad=False), return_weights=True)
    row_sums = g_va.sum(-1)
    assert ((row_sums - 1).abs() < 1e-6).logical_or(row_sums == 0).all()


def test_psp_zero_affinity_propagates_nothing():
    m = avattn.PositiveSamplePropagation(8, variant="weak", dtype=D).eval()
    with torch.no_grad():
        m.visual_query.weight.zero_()  # S = ReLU(0) = 0 everywhere
    v, a = rand(2, 5, 8, grad=False), rand(2, 5, 8, grad=False)
    out, (g_va, g_av) = m(v, a, return_weights=True)
    assert not g_va.any() and not g_av.any()
    torch.testing.assert_close(out.visual, m.norm(v))
    torch.testing.assert_close(out.audio, m.norm(a))


def test_psp_single_segment_keeps_its_pair():
    """T=1: the one normalised weight is 1 (above any threshold < 1) where the affinity is positive."""
    m = avattn.PositiveSamplePropagation(8, dtype=D).eval()
    _, (g_va, _) = m(rand(4, 1, 8, grad=False), rand(4, 1, 8, grad=False), return_weights=True)
    assert ((g_va - 1).abs() < 1e-6).logical_or(g_va == 0).all()


def test_psp_weak_variant_has_no_output_projections_and_no_renormalization():
    sup = avattn.PositiveSamplePropagation(256)
    weak = avattn.PositiveSamplePropagation(256, variant="weak")
    assert sum(p.numel() for p in sup.parameters()) == 6 * 256 * 256 + 2 * 256
    assert sum(p.numel() for p in weak.parameters()) == 4 * 256 * 256 + 2 * 256
    assert sup.renormalize and not weak.renormalize


@pytest.mark.parametrize("variant", ["supervised", "weak"])
def test_psp_float32_error_within_plain_torch_float32_error(variant):
    """In float32 the layer's distance from the float64 result is of the order of the plain-torch
    transcription's own float32 distance."""
    m64 = perturbed_psp(32, variant=variant).eval()
    v, a = rand(3, 10, 32, grad=False), rand(3, 10, 32, grad=False)
    truth = m64(v, a).fused
    m32 = copy.deepcopy(m64).float()
    ours = m32(v.float(), a.float()).fused.double()
    plain = psp_equations(
        m32, v.float(), a.float(), renormalize=m32.renormalize, threshold=m32.threshold, fc=variant == "supervised"
    )
    our_err, plain_err = (ours - truth).abs().max(), (plain[0].double() - truth).abs().max()
    assert 0 < plain_err < 1e-4
    assert our_err <= 4 * plain_err


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda: avattn.PositiveSamplePropagation(True), ValueError, r"dim must be an integer >= 1, got True"),
        (
            lambda: avattn.PositiveSamplePropagation(8, variant="full"),
            ValueError,
            r"variant must be one of \('supervised', 'weak'\), got 'full'",
        ),
        (
            lambda: avattn.PositiveSamplePropagation(8, threshold=1.0),
            ValueError,
            r"threshold must be a number in \[0, 1\), got 1.0",
        ),
        (
            lambda: avattn.PositiveSamplePropagation(8, threshold=-0.1),
            ValueError,
            r"threshold must be a number in \[0, 1\), got -0.1",
        ),
        (
            lambda: avattn.PositiveSamplePropagation(8, dropout=1),
            ValueError,
            r"dropout must be a number in \[0, 1\), got 1",
        ),
        (
            lambda: avattn.PositiveSamplePropagation(8, renormalize="no"),
            ValueError,
            r"renormalize must be True, False or None",
        ),
        (lambda: avattn.PositiveSamplePropagation(8, eps=0.0), ValueError, r"eps must be a finite number > 0, got 0.0"),
        (
            lambda: avattn.PositiveSamplePropagation(8, norm_eps=float("nan")),
            ValueError,
            r"norm_eps must be a finite number > 0, got nan",
        ),
        (
            lambda: avattn.PositiveSamplePropagation(8)(torch.randn(2, 3, 9), torch.randn(2, 3, 8)),
            ValueError,
            r"visual must have shape \(B, T, 8\), got \(2, 3, 9\)",
        ),
        (
            lambda: avattn.PositiveSamplePropagation(8)(torch.randn(2, 3, 8), torch.randn(1, 3, 8)),
            ValueError,
            r"audio must share \(B, T\) = \(2, 3\) with visual, got \(1, 3, 8\)",
        ),
    ],
)
def test_psp_argument_errors_name_the_argument(call, exc, pattern):
    """Constructor and forward arguments: the error names the argument, what it got and what it expects."""
    with pytest.raises(exc, match=pattern):
        call()
