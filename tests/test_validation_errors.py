"""Bad input: a ValueError/TypeError naming the argument and both shapes, before any work."""

import numpy as np
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
def test_bad_scale_or_dropout_p_raises_a_value_error_naming_it(kwargs, pattern):
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
        avattn.segment_accuracy(torch.zeros(2, 10, dtype=torch.long), torch.zeros(2, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"class_logits must have batch size 2"):
        avattn.predict_segments(s, torch.randn(3, 28))


F64, F32, F16 = torch.float64, torch.float32, torch.float16


def _visual_pair(visual_dtype, audio_dtype):
    return torch.rand(2, 3, 4, 4, 16, dtype=visual_dtype), torch.rand(2, 3, 8, dtype=audio_dtype)


def _seq(dtype, d=16, t=3):
    return torch.randn(2, t, d, dtype=dtype)


# (layer factory, inputs, expected message): float32 parameters unless the inputs say otherwise.
MIXED_DTYPES = {
    "AGSCA visual f64 vs parameters": (
        lambda: avattn.AGSCA(16, 8, hidden_dim=8), lambda: _visual_pair(F64, F64),
        r"visual has dtype torch.float64 but the AGSCA parameters have dtype torch.float32",
    ),
    "AGSCA audio f32 vs visual f16": (
        lambda: avattn.AGSCA(16, 8, hidden_dim=8), lambda: _visual_pair(F16, F32),
        r"audio has dtype torch.float32 but visual has dtype torch.float16",
    ),
    "channel half": (
        lambda: avattn.AudioGuidedChannelAttention(16, 8), lambda: _visual_pair(F32, F64),
        r"audio has dtype torch.float64 but visual has dtype torch.float32",
    ),
    "spatial half": (
        lambda: avattn.AudioGuidedSpatialAttention(16, 8, hidden_dim=8), lambda: _visual_pair(F64, F64),
        r"visual has dtype torch.float64 but the AudioGuidedSpatialAttention parameters have dtype torch.float32",
    ),
    "AGVA": (
        lambda: avattn.AGVA(16, 8, hidden_dim=8, attention_dim=16), lambda: _visual_pair(F32, F16),
        r"audio has dtype torch.float16 but visual has dtype torch.float32",
    ),
    "CMRA memory": (
        lambda: avattn.CrossModalRelationAttention(16, 2), lambda: (_seq(F32), [_seq(F32, t=5), _seq(F64)]),
        r"memory\[1\] has dtype torch.float64 but query has dtype torch.float32",
    ),
    "CMRA vs parameters": (
        lambda: avattn.CrossModalRelationAttention(16, 2), lambda: (_seq(F64), [_seq(F64)]),
        r"query has dtype torch.float64 but the CrossModalRelationAttention parameters have dtype torch.float32",
    ),
    "FeatureConcatCMRA": (
        lambda: avattn.FeatureConcatCMRA(16, 2), lambda: (_seq(F32), [_seq(F16), _seq(F32)]),
        r"memory\[0\] has dtype torch.float16 but query has dtype torch.float32",
    ),
    "RelationLayer": (
        lambda: avattn.RelationLayer(16, 2, ffn_dim=32), lambda: (_seq(F64), [_seq(F64)]),
        r"x has dtype torch.float64 but the RelationLayer parameters have dtype torch.float32",
    ),
    "RelationAwareModule": (
        lambda: avattn.RelationAwareModule(8, 12, 16, num_heads=2, ffn_dim=32),
        lambda: (_seq(F32, 8), _seq(F16, 12)),
        r"other has dtype torch.float16 but x has dtype torch.float32",
    ),
    "AudioVideoInteraction": (
        lambda: avattn.AudioVideoInteraction(16, 2), lambda: (_seq(F64), _seq(F32)),
        r"audio has dtype torch.float32 but visual has dtype torch.float64",
    ),
    "ITR": (
        lambda: avattn.InternalTemporalRelation(12, 16, num_heads=2, ffn_dim=32), lambda: (_seq(F64, 12),),
        r"x has dtype torch.float64 but the InternalTemporalRelation parameters have dtype torch.float32",
    ),
    "SupervisedHead": (
        lambda: avattn.SupervisedLocalizationHead(16), lambda: (_seq(F64),),
        r"x has dtype torch.float64 but the SupervisedLocalizationHead parameters have dtype torch.float32",
    ),
    "WeakHead": (
        lambda: avattn.WeakLocalizationHead(16), lambda: (_seq(F16),),
        r"x has dtype torch.float16 but the WeakLocalizationHead parameters have dtype torch.float32",
    ),
    "FeedForward": (
        lambda: avattn.FeedForward(16, 32), lambda: (_seq(F64),),
        r"x has dtype torch.float64 but the FeedForward parameters have dtype torch.float32",
    ),
    "BiLSTMEncoder": (
        lambda: avattn.BiLSTMEncoder(8, 4), lambda: (_seq(F64, 8),),
        r"x has dtype torch.float64 but the BiLSTMEncoder parameters have dtype torch.float32",
    ),
    "DMRN": (
        lambda: avattn.DMRN(8), lambda: (_seq(F32, 8), _seq(F64, 8)),
        r"audio has dtype torch.float64 but visual has dtype torch.float32",
    ),
    "PositiveSamplePropagation": (
        lambda: avattn.PositiveSamplePropagation(8), lambda: (_seq(F32, 8), _seq(F16, 8)),
        r"audio has dtype torch.float16 but visual has dtype torch.float32",
    ),
    "SegmentClassifier": (
        lambda: avattn.SegmentClassifier(8), lambda: (_seq(F64, 8),),
        r"x has dtype torch.float64 but the SegmentClassifier parameters have dtype torch.float32",
    ),
    "TemporalWeightingHead": (
        lambda: avattn.TemporalWeightingHead(29), lambda: (_seq(F64, 29),),
        r"segment_scores has dtype torch.float64 but the TemporalWeightingHead parameters have dtype torch.float32",
    ),
}


@pytest.mark.parametrize("case", sorted(MIXED_DTYPES))
def test_mixed_dtypes_raise_type_error_naming_both_before_any_work(case):
    make_layer, make_inputs, pattern = MIXED_DTYPES[case]
    layer = make_layer()
    called = []
    for name, sub in layer.named_modules():
        if sub is not layer:
            sub.register_forward_pre_hook(lambda m, args, name=name: called.append(name))
    with pytest.raises(TypeError, match=pattern):
        layer(*make_inputs())
    assert called == [], f"sublayers ran before the dtype check: {called}"


def test_mixed_dtypes_pass_under_autocast():
    """In an autocast region mixed dtypes are normal: no check, autocast casts them."""
    agsca, cmra = avattn.AGSCA(16, 8, hidden_dim=8), avattn.CrossModalRelationAttention(16, 2)
    visual, audio = _visual_pair(torch.bfloat16, F32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert agsca(visual, audio).shape == (2, 3, 16)
        assert cmra(_seq(torch.bfloat16), [_seq(F32)]).dtype == torch.bfloat16


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: avattn.CrossModalRelationAttention(16, 0), r"num_heads must be an integer >= 1, got 0"),
        (lambda: avattn.CrossModalRelationAttention(16, -4), r"num_heads must be an integer >= 1, got -4"),
        (lambda: avattn.CrossModalRelationAttention(16, 3), r"num_heads must divide dim=16, got num_heads=3"),
        (lambda: avattn.CrossModalRelationAttention(0, 1), r"dim must be an integer >= 1, got 0"),
        (lambda: avattn.CrossModalRelationAttention(16, 2, dropout=1.5), r"dropout must be a number in \[0, 1\), got 1.5"),
        (lambda: avattn.CrossModalRelationAttention(16, 2, dropout=1.0), r"dropout must be a number in \[0, 1\), got 1.0"),
        (lambda: avattn.CrossModalRelationAttention(16, 2, backend="flash"), r"backend must be one of .*got 'flash'"),
        (lambda: avattn.CrossModalRelationAttention(16, 2, memory_dim=0), r"memory_dim must be an integer >= 1, got 0"),
        (lambda: avattn.FeatureConcatCMRA(16, 2, num_sources=0), r"num_sources must be an integer >= 1, got 0"),
        (lambda: avattn.AGSCA(16, 8, reduction=0), r"reduction must be an integer >= 1, got 0"),
        (lambda: avattn.AGSCA(16, 8, reduction=3), r"reduction must divide visual_dim=16, got reduction=3"),
        (lambda: avattn.AGSCA(0, 8), r"visual_dim must be an integer >= 1, got 0"),
        (lambda: avattn.AGSCA(16, -1), r"audio_dim must be an integer >= 1, got -1"),
        (lambda: avattn.AGSCA(16, 8, hidden_dim=0), r"hidden_dim must be an integer >= 1, got 0"),
        (lambda: avattn.AGSCA(True, 8), r"visual_dim must be an integer >= 1, got True"),
        (lambda: avattn.AudioGuidedSpatialAttention(16, 8, hidden_dim=2.5), r"hidden_dim must be an integer >= 1, got 2.5"),
        (lambda: avattn.AGVA(16, 8, attention_dim=0), r"attention_dim must be an integer >= 1, got 0"),
        (lambda: avattn.AGVA(16, 8, hidden_dim=-2), r"hidden_dim must be an integer >= 1, got -2"),
        (lambda: avattn.SpatialAverage(0, 8), r"visual_dim must be an integer >= 1, got 0"),
        (lambda: avattn.RelationLayer(16, 2, ffn_dim=0), r"ffn_dim must be an integer >= 1, got 0"),
        (lambda: avattn.RelationLayer(16, 2, dropout=-0.1), r"dropout must be a number in \[0, 1\), got -0.1"),
        (lambda: avattn.RelationLayer(16, 2, num_sources=0, memory_layout="feature"), r"num_sources must be an integer >= 1"),
        (lambda: avattn.RelationLayer(16, 2, backend="cuda"), r"backend must be one of .*got 'cuda'"),
        (lambda: avattn.FeedForward(16, 0), r"hidden_dim must be an integer >= 1, got 0"),
        (lambda: avattn.InternalTemporalRelation(12, 16, num_heads=3), r"num_heads must divide dim=16, got num_heads=3"),
        (lambda: avattn.InternalTemporalRelation(12, 16, num_layers=-1), r"num_layers must be an integer >= 0, got -1"),
        (lambda: avattn.InternalTemporalRelation(0, 16), r"input_dim must be an integer >= 1, got 0"),
        (lambda: avattn.InternalTemporalRelation(12, 16, num_layers=0, dropout=2), r"dropout must be a number in \[0, 1\), got 2"),
        (lambda: avattn.RelationAwareModule(8, 12, 16, num_layers=-1), r"num_layers must be an integer >= 0, got -1"),
        (lambda: avattn.RelationAwareModule(8, 12, 16, variant="none", backend="x"), r"backend must be one of .*got 'x'"),
        (lambda: avattn.RelationAwareModule(8, 0, 16), r"other_dim must be an integer >= 1, got 0"),
        (lambda: avattn.AudioVideoInteraction(16, 2, variant="none", dropout=1.5), r"dropout must be a number in \[0, 1\)"),
        (lambda: avattn.AudioVideoInteraction(16, 0), r"num_heads must be an integer >= 1, got 0"),
        (lambda: avattn.SupervisedLocalizationHead(0), r"dim must be an integer >= 1, got 0"),
        (lambda: avattn.WeakLocalizationHead(16, 0), r"num_classes must be an integer >= 1, got 0"),
    ],
)
def test_constructor_arguments_are_validated(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_constructors_accept_numpy_scalars():
    cmra = avattn.CrossModalRelationAttention(np.int64(16), np.int32(2), dropout=np.float32(0.25))
    assert (cmra.dim, cmra.num_heads, cmra.dropout) == (16, 2, 0.25)
    assert type(cmra.dim) is int and type(cmra.dropout) is float


def test_auto_backend_gives_the_reference_reason():
    q, k, v = torch.randn(1, 2, 1, 0), [torch.randn(1, 3, 1, 0)], [torch.randn(1, 3, 1, 0)]
    with pytest.raises(RuntimeError, match=r"no attention backend can serve this call: .*'reference' supports head dims 1\.\.\d+, got 0"):
        cmra_attention(q, k, v)


@pytest.mark.parametrize("scale", [float("inf"), float("nan"), 0.0, True, "0.5"])
def test_scale_must_be_finite_positive(scale):
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"scale must be a finite positive number or None, got"):
        cmra_attention(q, k, v, scale=scale)


@pytest.mark.parametrize("backend", ["reference", "sdpa"])
def test_numpy_scalars_accepted_for_scale_and_dropout(backend):
    q, k, v = qkv()
    expected = cmra_attention(q, k, v, scale=0.5, backend=backend)
    out = cmra_attention(q, k, v, scale=np.float32(0.5), dropout_p=np.float64(0.0), backend=backend)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_numpy_scalars_accepted_for_layer_sizes_and_threshold():
    assert avattn.SegmentClassifier(np.int64(8), hidden_dim=np.int32(4)).hidden.out_features == 4
    assert avattn.PositiveSamplePropagation(8, threshold=np.float32(0.25)).threshold == pytest.approx(0.25)


VISUAL_LAYERS = {
    "AGSCA": lambda: avattn.AGSCA(16, 8, hidden_dim=8),
    "channel": lambda: avattn.AudioGuidedChannelAttention(16, 8),
    "spatial": lambda: avattn.AudioGuidedSpatialAttention(16, 8, hidden_dim=8),
    "AGVA": lambda: avattn.AGVA(16, 8, hidden_dim=8),
    "SpatialAverage": lambda: avattn.SpatialAverage(16, 8),
}


@pytest.mark.parametrize("cells", [(0,), (0, 4), (4, 0)])
@pytest.mark.parametrize("name", sorted(VISUAL_LAYERS))
def test_empty_cell_axis_is_an_error_naming_visual(name, cells):
    visual = torch.rand(2, 3, *cells, 16)
    with pytest.raises(ValueError, match=r"visual must have at least one spatial cell \(H, W or N >= 1\), got \(2, 3, "):
        VISUAL_LAYERS[name]()(visual, torch.rand(2, 3, 8))


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: avattn.SupervisedLocalizationHead(16)(_seq(F32, t=0)), r"x must have at least one time step .* got \(2, 0, 16\)"),
        (lambda: avattn.WeakLocalizationHead(16)(_seq(F32, t=0)), r"x must have at least one time step"),
        (lambda: avattn.InternalTemporalRelation(12, 16, num_heads=2, ffn_dim=32)(_seq(F32, 12, t=0)), r"x must have at least one time step .* got \(2, 0, 12\)"),
        (lambda: avattn.RelationAwareModule(8, 12, 16, num_heads=2, ffn_dim=32)(_seq(F32, 8, t=0), _seq(F32, 12, t=0)), r"x must have at least one time step"),
        (lambda: avattn.AudioVideoInteraction(16, 2)(_seq(F32, t=0), _seq(F32, t=0)), r"visual must have at least one time step"),
        (lambda: avattn.CrossModalRelationAttention(16, 2)(_seq(F32), [_seq(F32), _seq(F32, t=0)]), r"memory\[1\] must have at least one time step"),
        (lambda: avattn.RelationLayer(16, 2, ffn_dim=32)(_seq(F32), [_seq(F32, t=0)]), r"memory\[0\] must have at least one time step"),
    ],
)
def test_empty_time_axis_is_an_error_naming_the_argument(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def _labels(*values):
    return torch.tensor(values)


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda s, c, c29: avattn.supervised_localization_loss(s, c, _labels([1, 2, 28], [28, 3, 4]), _labels(28, 0)),
         r"video_labels must be in 0\.\.27, got 28 at index \(0,\)"),
        (lambda s, c, c29: avattn.supervised_localization_loss(s, c, _labels([1, 2, 28], [28, 3, 4]), _labels(0, -1)),
         r"video_labels must be in 0\.\.27, got -1 at index \(1,\)"),
        (lambda s, c, c29: avattn.supervised_localization_loss(s, c, _labels([1, 2, 28], [28, 99, 4]), _labels(0, 1)),
         r"segment_labels must be in 0\.\.27 or the background label 28, got 99 at index \(1, 1\)"),
        (lambda s, c, c29: avattn.weak_localization_loss(c29, _labels(29, 0)), r"video_labels must be in 0\.\.28, got 29 at index \(0,\)"),
        (lambda s, c, c29: avattn.weak_localization_loss(c29, _labels(0, 1), num_classes=28), r"num_classes must equal the class axis"),
        (lambda s, c, c29: avattn.segment_accuracy(_labels([1, 2, 28], [28, 3, 4]), _labels([1, 2, 28], [28, 3, 99])),
         r"segment_labels must be in 0\.\.27 or the background label 28, got 99 at index \(1, 2\)"),
        (lambda s, c, c29: avattn.supervised_localization_loss(s, c[:1], _labels([1, 2, 28], [28, 3, 4]), _labels(0, 1)),
         r"class_logits must have batch size 2 like event_logits, got \(1, 28\)"),
    ],
)
def test_labels_out_of_range_name_the_label_and_range(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call(torch.randn(2, 3), torch.randn(2, 28), torch.randn(2, 29))


def test_labels_in_range_at_the_edges_are_accepted():
    s, c = torch.randn(2, 3), torch.randn(2, 28)
    assert avattn.supervised_localization_loss(s, c, _labels([0, 27, 28], [28, 28, 28]), _labels(0, 27)).isfinite()
    assert avattn.weak_localization_loss(torch.randn(2, 29), _labels(0, 28)).isfinite()


def test_label_check_under_compile_needs_no_host_sync():
    """Traced as torch._assert_async (fullgraph: no .item(), no graph break); it still fails the call."""
    torch._dynamo.reset()
    loss = torch.compile(avattn.weak_localization_loss, fullgraph=True, backend="aot_eager")
    assert loss(torch.randn(2, 29), _labels(3, 28)).isfinite()
    with pytest.raises(RuntimeError, match=r"video_labels must be in 0\.\.28"):
        loss(torch.randn(2, 29), _labels(3, 29))
