"""Every public layer under torch.compile(fullgraph=True) gives the eager result, forward and backward,
and the attention weights it returns are the eager ones."""

import pytest
import torch

import avattn

CASES = {
    "AGSCA": lambda: (avattn.AGSCA(16, 8, hidden_dim=8), (torch.rand(2, 3, 4, 4, 16), torch.rand(2, 3, 8))),
    "AGVA": lambda: (avattn.AGVA(16, 8, hidden_dim=8, attention_dim=16), (torch.rand(2, 3, 16, 16), torch.rand(2, 3, 8))),
    "CMRA": lambda: (
        avattn.CrossModalRelationAttention(16, 2),
        (torch.randn(2, 3, 16), [torch.randn(2, 5, 16), torch.randn(2, 3, 16)]),
    ),
    "FeatureConcatCMRA": lambda: (avattn.FeatureConcatCMRA(16, 2), (torch.randn(2, 3, 16), [torch.randn(2, 3, 16)] * 2)),
    "RelationLayer": lambda: (avattn.RelationLayer(16, 2, ffn_dim=32), (torch.randn(2, 3, 16), [torch.randn(2, 4, 16)])),
    "ITR": lambda: (avattn.InternalTemporalRelation(12, 16, num_layers=2, num_heads=2, ffn_dim=32), (torch.randn(2, 5, 12),)),
    "RAM": lambda: (avattn.RelationAwareModule(12, 10, 16, num_heads=2, ffn_dim=32), (torch.randn(2, 5, 12), torch.randn(2, 5, 10))),
    "AVI": lambda: (avattn.AudioVideoInteraction(16, 2), (torch.randn(2, 5, 16), torch.randn(2, 5, 16))),
    "SupervisedHead": lambda: (avattn.SupervisedLocalizationHead(16, 28), (torch.randn(2, 5, 16),)),
    "WeakHead": lambda: (avattn.WeakLocalizationHead(16, 29), (torch.randn(2, 5, 16),)),
    "BiLSTMEncoder": lambda: (avattn.BiLSTMEncoder(12, 8, num_layers=2), (torch.randn(3, 7, 12),)),
    "DMRN": lambda: (avattn.DMRN(16, num_layers=2), (torch.randn(3, 7, 16), torch.randn(3, 7, 16))),
    "PSP-supervised": lambda: (avattn.PositiveSamplePropagation(16), (torch.randn(3, 10, 16), torch.randn(3, 10, 16))),
    "PSP-weak": lambda: (
        avattn.PositiveSamplePropagation(16, variant="weak"),
        (torch.randn(1, 1, 16), torch.randn(1, 1, 16)),
    ),
    "SegmentClassifier": lambda: (avattn.SegmentClassifier(16, 29), (torch.randn(3, 7, 16),)),
    "TemporalWeightingHead": lambda: (avattn.TemporalWeightingHead(29), (torch.randn(3, 7, 29),)),
}


def _flat(out):
    return [t for t in (out if isinstance(out, tuple) else (out,)) if isinstance(t, torch.Tensor)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_compile_fullgraph_matches_eager(name):
    torch._dynamo.reset()
    module, inputs = CASES[name]()
    module.eval()
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    eager_out, compiled_out = _flat(module(*inputs)), _flat(compiled(*inputs))
    for e, c in zip(eager_out, compiled_out, strict=True):
        torch.testing.assert_close(c, e)
    params = list(module.parameters())  # every parameter gets a gradient (none is left unused)
    grads = [torch.autograd.grad(sum(o.sum() for o in outs), params) for outs in (eager_out, compiled_out)]
    for ge, gc in zip(*grads, strict=True):
        torch.testing.assert_close(gc, ge)


def test_compiled_cmra_returns_the_eager_weights():
    torch._dynamo.reset()
    cmra = avattn.CrossModalRelationAttention(16, 2).eval()
    q, m = torch.randn(2, 3, 16), torch.randn(2, 4, 16)
    out, maps = torch.compile(lambda q, m: cmra(q, [m, q], return_weights=True), fullgraph=True, backend="aot_eager")(q, m)
    ref_out, ref_maps = cmra(q, [m, q], return_weights=True)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(maps.weights, ref_maps.weights)
    assert maps.source_lengths == (4, 3)


def test_compiled_psp_returns_the_eager_weights():
    torch._dynamo.reset()
    m = avattn.PositiveSamplePropagation(16).eval()
    v, a = torch.randn(2, 10, 16), torch.randn(2, 10, 16)
    out, w = torch.compile(lambda v, a: m(v, a, return_weights=True), fullgraph=True, backend="aot_eager")(v, a)
    ref_out, ref_w = m(v, a, return_weights=True)
    torch.testing.assert_close(out.fused, ref_out.fused)
    torch.testing.assert_close(w.visual_from_audio, ref_w.visual_from_audio)
