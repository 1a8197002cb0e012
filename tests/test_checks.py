"""avattn._checks at work: non-tensors, non-bool flags, integer dtypes, meta tensors and empty batches
get a clear error naming the argument (or, where documented, a defined result) in every public entry."""

import inspect
import re

import pytest
import torch
from layer_cases import LAYERS, tensors

import avattn
from avattn.functional import BACKENDS, cmra_attention

META = torch.device("meta")


def _labels(*rows):
    return torch.tensor(rows)


# ---- non-tensor arguments ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda: avattn.SpatialAverage(16, 8)(torch.rand(2, 3, 4, 4, 16), None), TypeError,
         r"audio must be a torch.Tensor of shape \(B, T, 8\), got NoneType"),
        (lambda: avattn.SpatialAverage(16, 8)(torch.rand(2, 3, 4, 4, 16), torch.rand(2, 3, 9)), ValueError,
         r"audio must have shape \(B, T, 8\), got \(2, 3, 9\)"),
        (lambda: avattn.AGSCA(16, 8)(None, torch.rand(2, 3, 8)), TypeError,
         r"visual must be a torch.Tensor of shape \(B, T, H, W, 16\) or \(B, T, N, 16\), got NoneType"),
        (lambda: avattn.segment_accuracy([1, 2], [1, 2]), TypeError,
         r"predictions must be an integer tensor \(B, T\), got list"),
        (lambda: avattn.segment_accuracy(_labels([1, 2]), [1, 2]), TypeError,
         r"segment_labels must be an integer tensor \(B, T\), got list"),
        (lambda: avattn.bit_dropout([1.0, 2.0], 0.5), TypeError, r"x must be a floating torch.Tensor, got list"),
        (lambda: avattn.FeedForward(8, 4)(None), TypeError, r"x must be a torch.Tensor of shape \(B, T, 8\), got NoneType"),
        (lambda: avattn.FeedForward(8, 4)(torch.ones(2, 3, 7)), ValueError, r"x must have shape \(B, T, 8\), got \(2, 3, 7\)"),
        (lambda: avattn.check_label_range("labels", [1, 2], 28), TypeError, r"labels must be an integer tensor, got list"),
    ],
)
def test_non_tensor_arguments_name_the_argument(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ---- non-bool flags ------------------------------------------------------------------------------

def test_cmra_attention_refuses_a_non_bool_return_weights():
    q = torch.randn(2, 3, 2, 8)
    for flag in ("no", 1, None):
        with pytest.raises(ValueError, match=rf"return_weights must be True or False, got {flag!r}"):
            cmra_attention(q, [q], [q], return_weights=flag)


@pytest.mark.parametrize("name", sorted(n for n, (make, _) in LAYERS.items()
                                        if "return_weights" in inspect.signature(make().forward).parameters))
def test_every_layer_refuses_a_non_bool_return_weights(name):
    make, inputs = LAYERS[name]
    with pytest.raises(ValueError, match=r"return_weights must be True or False, got 'no'"):
        make()(*inputs(2), return_weights="no")


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: avattn.AGVA(16, 8, audio_along_cells="yes"), r"audio_along_cells must be True or False, got 'yes'"),
        (lambda: avattn.CrossModalRelationAttention(16, 2, bias="yes"), r"bias must be True or False, got 'yes'"),
        (lambda: avattn.bit_dropout(torch.ones(4), 0.5, "no"), r"training must be True or False, got 'no'"),
        (lambda: avattn.bit_dropout(torch.ones(4), "0.5"), r"p must be a number in \[0, 1\), got '0.5'"),
        (lambda: avattn.BitDropout("x"), r"p must be a number in \[0, 1\), got 'x'"),
        (lambda: avattn.fused_projected_agsca(torch.rand(2, 3, 4, 16), torch.rand(2, 3, 8), torch.nn.Linear(16, 16),
                                              avattn.AGSCA(16, 8), dropout=0.2, training="yes"),
         r"training must be True or False, got 'yes'"),
    ],
)
def test_non_bool_flags_and_non_number_options_are_refused(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_fused_path_names_a_wrong_module():
    visual, audio = torch.rand(2, 3, 4, 16), torch.rand(2, 3, 8)
    with pytest.raises(TypeError, match=r"agsca must be an avattn.AGSCA, got AGVA"):
        avattn.fused_projected_agsca(visual, audio, torch.nn.Linear(16, 16), avattn.AGVA(16, 8), dropout=0.0, training=False)
    with pytest.raises(TypeError, match=r"proj must be an nn.Linear with a bias, got Linear without a bias"):
        avattn.fused_projected_agsca(visual, audio, torch.nn.Linear(16, 16, bias=False), avattn.AGSCA(16, 8),
                                     dropout=0.0, training=False)


# ---- integer dtypes ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.uint8])
def test_bit_dropout_refuses_integer_and_bool_tensors_before_torch_does(dtype):
    x = torch.ones(4, 8, dtype=dtype)
    with pytest.raises(TypeError, match=rf"x must be a floating tensor .*got {dtype}"):
        avattn.bit_dropout(x, 0.5)
    with pytest.raises(TypeError, match=rf"x must be a floating tensor .*got {dtype}"):
        avattn.BitDropout(0.5)(x)


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: avattn.segment_accuracy(torch.zeros(2, 3), _labels([1, 2, 3], [4, 5, 6])),
         r"predictions must be an integer tensor \(B, T\), got torch.float32"),
        (lambda: avattn.segment_accuracy(_labels([1, 2, 3]), torch.zeros(1, 3, dtype=torch.bool)),
         r"segment_labels must be an integer tensor \(B, T\), got torch.bool"),
        (lambda: avattn.check_label_range("labels", torch.zeros(3), 28), r"labels must be an integer tensor, got torch.float32"),
        (lambda: avattn.FeedForward(8, 4)(torch.ones(2, 3, 8, dtype=torch.long)), r"x must be a floating tensor .*got torch.int64"),
    ],
)
def test_integer_and_float_mixups_name_the_argument_and_dtype(call, pattern):
    with pytest.raises(TypeError, match=pattern):
        call()


# ---- meta tensors --------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{}, {"backend": "reference"}, {"backend": "sdpa"}, {"return_weights": True},
                                    {"dropout_p": 0.1}, {"masks": True}])
def test_cmra_attention_on_meta_tensors_needs_no_values(kwargs):
    q, k = torch.randn(2, 3, 2, 16, device=META), torch.randn(2, 5, 2, 16, device=META)
    kwargs = dict(kwargs)
    if kwargs.pop("masks", False):
        kwargs["key_padding_masks"] = [torch.zeros(2, 5, dtype=torch.bool, device=META), None]
    result = cmra_attention(q, [k, q], [k, q], **kwargs)
    out = result[0] if kwargs.get("return_weights") else result
    assert out.device == META and out.shape == (2, 3, 2, 16)
    if kwargs.get("return_weights"):
        assert result[1].shape == (2, 2, 3, 8)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_layer_runs_on_meta_tensors_with_the_cpu_shapes(name):
    make, inputs = LAYERS[name]
    torch.manual_seed(0)
    expected = [t.shape for t in tensors(make().eval()(*inputs(2)))]
    out = tensors(make(device=META).eval()(*inputs(2, device=META)))
    assert [t.shape for t in out] == expected
    assert all(t.device == META for t in out)


def test_the_fused_visual_path_runs_on_meta_tensors():
    proj, agsca = torch.nn.Linear(16, 12, device=META), avattn.AGSCA(12, 8, device=META)
    out, spatial, gates = avattn.fused_projected_agsca(torch.rand(2, 3, 4, 4, 16, device=META), torch.rand(2, 3, 8, device=META),
                                                       proj, agsca, dropout=0.2, training=True)
    assert (out.shape, spatial.shape, gates.shape) == ((2, 3, 12), (2, 3, 4, 4), (2, 3, 12))


def test_losses_and_metrics_run_on_meta_tensors():
    s, c = torch.randn(2, 3, device=META), torch.randn(2, 28, device=META)
    seg, vid = torch.zeros(2, 3, dtype=torch.long, device=META), torch.zeros(2, dtype=torch.long, device=META)
    assert avattn.supervised_localization_loss(s, c, seg, vid).device == META
    assert avattn.segment_accuracy(avattn.predict_segments(s, c), seg).device == META


# ---- empty batches -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_layer_maps_an_empty_batch_to_empty_outputs(name):
    make, inputs = LAYERS[name]
    full, empty = tensors(make().eval()(*inputs(2))), tensors(make().eval()(*inputs(0)))
    assert [t.shape[1:] for t in empty] == [t.shape[1:] for t in full]
    assert all(t.shape[0] == 0 for t in empty)


def test_segment_accuracy_of_no_segment_is_an_error_not_nan():
    for shape in ((0, 10), (2, 0)):
        empty = torch.zeros(shape, dtype=torch.long)
        with pytest.raises(ValueError, match=r"predictions must have at least one entry on every axis \(B, T\), got shape "
                           + re.escape(str(shape))):
            avattn.segment_accuracy(empty, empty)


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: avattn.supervised_localization_loss(torch.zeros(0, 3), torch.zeros(0, 28), torch.zeros(0, 3, dtype=torch.long),
                                                     torch.zeros(0, dtype=torch.long)), r"event_logits must have at least one entry"),
        (lambda: avattn.weak_localization_loss(torch.zeros(0, 29), torch.zeros(0, dtype=torch.long)), r"video_scores must have at least one entry"),
        (lambda: avattn.segment_cross_entropy(torch.zeros(2, 0, 29), torch.zeros(2, 0, dtype=torch.long)), r"segment_logits must have at least one entry"),
        (lambda: avattn.segment_soft_margin_loss(torch.zeros(0, 3, 29), torch.zeros(0, 3, dtype=torch.long)), r"segment_scores must have at least one entry"),
        (lambda: avattn.avps_loss(torch.zeros(0, 3, 8), torch.zeros(0, 3, 8), torch.zeros(0, 3)), r"visual must have at least one entry"),
        (lambda: avattn.soft_target_bce_loss(torch.zeros(0, 29), torch.zeros(0, 29)), r"video_probs must have at least one entry"),
        (lambda: avattn.avps_target(torch.zeros(2, 0, dtype=torch.long)), r"segment_labels must have at least one segment"),
        (lambda: avattn.predict_segments(torch.zeros(2, 3), torch.zeros(2, 0)), r"class_logits must have at least one class"),
    ],
)
def test_a_mean_over_nothing_is_an_error_naming_the_empty_argument(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_per_segment_maps_of_an_empty_batch_are_empty():
    assert avattn.predict_segments(torch.zeros(0, 10), torch.zeros(0, 28)).shape == (0, 10)
    assert avattn.predict_segment_classes(torch.zeros(0, 10, 29)).shape == (0, 10)
    assert avattn.avps_target(torch.zeros(0, 10, dtype=torch.long)).shape == (0, 10)
    q = torch.randn(0, 3, 2, 8)
    assert cmra_attention(q, [q], [q]).shape == (0, 3, 2, 8)


# ---- other option values -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: avattn.supervised_localization_loss(torch.zeros(2, 3), torch.zeros(2, 28), torch.zeros(2, 3, dtype=torch.long),
                                                     torch.zeros(2, dtype=torch.long), background="x"),
         r"background must be an integer >= 0, got 'x'"),
        (lambda: avattn.predict_segments(torch.zeros(2, 3), torch.zeros(2, 28), background=None), r"background must be an integer >= 0, got None"),
        (lambda: avattn.segment_accuracy(_labels([1]), _labels([1]), background=-1), r"background must be an integer >= 0, got -1"),
        (lambda: avattn.avps_target(_labels([1, 28]), dtype=torch.long), r"dtype must be a floating torch.dtype .* got torch.int64"),
        (lambda: avattn.avps_target(_labels([1, 28]), dtype="float32"), r"dtype must be a floating torch.dtype .* got 'float32'"),
        (lambda: avattn.avps_loss(torch.zeros(2, 3, 8), torch.zeros(2, 3, 8), torch.zeros(2, 3), eps="x"), r"eps must be a finite number > 0, got 'x'"),
        (lambda: avattn.check_label_range("labels", _labels(1), 0), r"num_classes must be an integer >= 1, got 0"),
        (lambda: avattn.CrossModalRelationAttention(16, 2, backend=None), r"backend must be one of \('auto', 'reference', 'sdpa', 'triton'\), got None"),
    ],
)
def test_option_values_name_the_option(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_every_backend_name_is_accepted_by_the_layers():
    for backend in BACKENDS:
        assert avattn.CrossModalRelationAttention(16, 2, backend=backend).backend == backend
