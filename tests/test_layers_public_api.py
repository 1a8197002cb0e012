"""The public surface speaks one vocabulary: documented forwards, public choice tuples, one name per concept."""

import inspect
import pydoc

import pytest
import torch
import torch.nn as nn
from layer_cases import LAYERS

import avattn
import avattn.functional

PUBLIC_LAYERS = sorted(
    name for name in avattn.__all__ if inspect.isclass(getattr(avattn, name)) and issubclass(getattr(avattn, name), nn.Module)
)
# Names retired for one release (see tests/test_deprecation.py), and the name that replaced each.
RETIRED = {"in_dim": "input_dim", "query_dim": "input_dim", "itr_layers": "num_layers", "num_blocks": "num_layers",
           "key_padding_mask": "key_padding_masks", "video": "visual"}


def test_every_public_layer_has_a_sweep_case():
    assert PUBLIC_LAYERS and set(PUBLIC_LAYERS) <= set(LAYERS), sorted(set(PUBLIC_LAYERS) - set(LAYERS))


@pytest.mark.parametrize("name", PUBLIC_LAYERS)
def test_every_public_forward_documents_axes_shapes_and_weights(name):
    cls = getattr(avattn, name)
    doc = inspect.getdoc(cls.forward)
    assert doc and cls.forward is not nn.Module.forward, f"{name}.forward has no docstring"
    assert "Axes:" in doc, f"{name}.forward: no axis legend"
    assert "B batch" in doc or name == "BitDropout", doc  # BitDropout is elementwise, any shape
    shapes = doc.partition("Shapes:")[2].partition("return_weights=True:")[0]  # the Shapes paragraph
    assert "->" in shapes and "(" in shapes, f"{name}.forward: no 'Shapes: ... -> ...' paragraph"
    if "return_weights" in inspect.signature(cls.forward).parameters:
        assert "return_weights=True:" in doc, f"{name}.forward does not say what return_weights adds"
    first_line = doc.splitlines()[0]
    assert first_line in pydoc.render_doc(cls, renderer=pydoc.plaintext)  # help(avattn.<Layer>) shows it


@pytest.mark.parametrize("name", PUBLIC_LAYERS)
def test_public_signatures_use_no_retired_name(name):
    cls = getattr(avattn, name)
    for method in (cls.__init__, cls.forward):
        retired = set(inspect.signature(method).parameters) & set(RETIRED)
        assert not retired, f"{name}.{method.__name__} still names {retired}: use {[RETIRED[r] for r in retired]}"


def test_layers_with_a_dropout_impl_default_to_bit_like_the_example():
    with_impl = [getattr(avattn, n) for n in PUBLIC_LAYERS
                 if "dropout_impl" in inspect.signature(getattr(avattn, n).__init__).parameters]
    assert len(with_impl) == 5
    for cls in with_impl:
        assert inspect.signature(cls.__init__).parameters["dropout_impl"].default == "bit" == avattn.DROPOUT_IMPLS[0]
    layer = avattn.RelationLayer(16, 2, ffn_dim=32)
    assert isinstance(layer.drop, avattn.BitDropout)
    assert isinstance(avattn.RelationLayer(16, 2, ffn_dim=32, dropout_impl="torch").drop, nn.Dropout)


@pytest.mark.parametrize(
    "layer, call, axis",
    [
        (lambda k: avattn.SupervisedLocalizationHead(8, k), lambda m: m(torch.randn(2, 3, 8)).class_logits, -1),
        (lambda k: avattn.WeakLocalizationHead(8, k), lambda m: m(torch.randn(2, 3, 8)).video_scores, -1),
        (lambda k: avattn.SegmentClassifier(8, k), lambda m: m(torch.randn(2, 3, 8)), -1),
        (lambda k: avattn.TemporalWeightingHead(k), lambda m: m(torch.randn(2, 3, m.num_classes)).video_probs, -1),
    ],
)
def test_num_classes_is_the_width_of_the_class_axis_everywhere(layer, call, axis):
    assert call(layer(11)).shape[axis] == 11


def test_choice_tuples_and_model_helpers_are_public_and_documented():
    assert avattn.functional.BACKENDS == ("auto", "reference", "sdpa", "triton")
    assert "BACKENDS" in avattn.functional.__all__ and set(avattn.functional.AUTO_ORDER) == set(avattn.functional.BACKENDS[1:])
    for name in ("CMRA_VARIANTS", "INTERACTION_VARIANTS", "PSP_VARIANTS", "DROPOUT_IMPLS"):
        choices = getattr(avattn, name)
        assert name in avattn.__all__ and isinstance(choices, tuple) and all(isinstance(c, str) for c in choices)
    for name in ("check_input_dtypes", "check_label_range", "fused_projected_agsca"):
        assert name in avattn.__all__ and len(inspect.getdoc(getattr(avattn, name)).splitlines()) > 3


def test_every_variant_tuple_is_what_the_layers_accept():
    for variant in avattn.CMRA_VARIANTS:
        avattn.RelationAwareModule(4, 4, 8, num_heads=2, ffn_dim=8, variant=variant)
    for variant in avattn.INTERACTION_VARIANTS:
        avattn.AudioVideoInteraction(8, 2, variant=variant)
    for variant in avattn.PSP_VARIANTS:
        avattn.PositiveSamplePropagation(8, variant=variant)
    for impl in avattn.DROPOUT_IMPLS:
        avattn.FeedForward(8, 8, dropout_impl=impl)
    with pytest.raises(ValueError, match=r"variant must be one of \('cmra', 'self', 'co', 'feature_concat', 'none'\)"):
        avattn.RelationAwareModule(4, 4, 8, variant="cross")
