"""Old names keep working for one release: each warns naming its new name (attributed to the caller's
line) and gives the new name's result; an old keyword passed with its new name is a TypeError."""

import importlib
import warnings

import pytest
import torch

import avattn

D = torch.float64


def _x(*shape):
    return torch.randn(*shape, dtype=D)


# name -> (class, other constructor keywords, old keyword, new keyword, value, forward inputs)
CONSTRUCTOR_RENAMES = {
    "RelationAwareModule query_dim": (
        avattn.RelationAwareModule, {"other_dim": 6, "dim": 8, "num_heads": 2, "ffn_dim": 16},
        "query_dim", "input_dim", 5, lambda: (_x(2, 3, 5), _x(2, 3, 6)),
    ),
    "RelationAwareModule itr_layers": (
        avattn.RelationAwareModule, {"input_dim": 5, "other_dim": 6, "dim": 8, "num_heads": 2, "ffn_dim": 16},
        "itr_layers", "num_layers", 1, lambda: (_x(2, 3, 5), _x(2, 3, 6)),
    ),
    "InternalTemporalRelation in_dim": (
        avattn.InternalTemporalRelation, {"dim": 8, "num_heads": 2, "ffn_dim": 16},
        "in_dim", "input_dim", 5, lambda: (_x(2, 3, 5),),
    ),
    "SegmentClassifier in_dim": (
        avattn.SegmentClassifier, {"num_classes": 7}, "in_dim", "input_dim", 5, lambda: (_x(2, 3, 5),),
    ),
    "DMRN num_blocks": (avattn.DMRN, {"dim": 4}, "num_blocks", "num_layers", 3, lambda: (_x(2, 3, 4), _x(2, 3, 4))),
}


@pytest.mark.parametrize("case", sorted(CONSTRUCTOR_RENAMES))
def test_old_constructor_keyword_warns_and_builds_the_same_layer(case):
    cls, kwargs, old, new, value, inputs = CONSTRUCTOR_RENAMES[case]
    torch.manual_seed(0)
    expected = cls(**kwargs, **{new: value}, dtype=D).eval()
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match=rf"{cls.__name__}: keyword '{old}' is deprecated .*; use '{new}'") as record:
        layer = cls(**kwargs, **{old: value}, dtype=D).eval()
    assert record[0].filename == __file__  # the warning points at the caller's line
    assert layer.state_dict().keys() == expected.state_dict().keys()
    x = inputs()
    torch.testing.assert_close(layer(*x), expected(*x), rtol=0, atol=0)


@pytest.mark.parametrize("case", sorted(CONSTRUCTOR_RENAMES))
def test_old_and_new_constructor_keywords_together_are_a_type_error(case):
    cls, kwargs, old, new, value, _ = CONSTRUCTOR_RENAMES[case]
    with pytest.raises(TypeError, match=rf"{cls.__name__} got both '{old}' \(deprecated\) and '{new}': pass '{new}' only"):
        cls(**kwargs, **{old: value, new: value})


def _interaction():
    return avattn.AudioVideoInteraction(8, 2, dtype=D).eval()


def _itr():
    return avattn.InternalTemporalRelation(5, 8, num_heads=2, ffn_dim=16, dtype=D).eval()


MASK = torch.tensor([[False, False, True], [False, False, False]])
# name -> (layer factory, old call, new call, old keyword, new keyword)
FORWARD_RENAMES = {
    "AudioVideoInteraction video": (
        _interaction, lambda m, v, a: m(video=v, audio=a), lambda m, v, a: m(visual=v, audio=a), "video", "visual",
    ),
    "InternalTemporalRelation key_padding_mask": (
        _itr, lambda m, x, _: m(x, key_padding_mask=MASK), lambda m, x, _: m(x, key_padding_masks=[MASK]),
        "key_padding_mask", "key_padding_masks",
    ),
    "InternalTemporalRelation key_padding_mask=None": (
        _itr, lambda m, x, _: m(x, key_padding_mask=None), lambda m, x, _: m(x, key_padding_masks=None),
        "key_padding_mask", "key_padding_masks",
    ),
}


def _forward_inputs(case):
    return (_x(2, 3, 8), _x(2, 3, 8)) if case.startswith("Audio") else (_x(2, 3, 5), None)


@pytest.mark.parametrize("case", sorted(FORWARD_RENAMES))
def test_old_forward_keyword_warns_and_gives_the_new_result(case):
    make, old_call, new_call, old, new = FORWARD_RENAMES[case]
    layer, inputs = make(), _forward_inputs(case)
    with pytest.warns(DeprecationWarning, match=rf"forward: keyword '{old}' is deprecated .*; use '{new}'") as record:
        got = old_call(layer, *inputs)
    assert record[0].filename == __file__
    torch.testing.assert_close(got, new_call(layer, *inputs), rtol=0, atol=0)


def test_old_and_new_forward_keywords_together_are_a_type_error():
    v = _x(2, 3, 8)
    with pytest.raises(TypeError, match=r"AudioVideoInteraction.forward got both 'video' \(deprecated\) and 'visual'"):
        _interaction()(video=v, visual=v, audio=v)
    with pytest.raises(TypeError, match=r"got both 'key_padding_mask' \(deprecated\) and 'key_padding_masks'"):
        _itr()(_x(2, 3, 5), key_padding_mask=MASK, key_padding_masks=[MASK])


def test_old_forward_keyword_works_under_compile_fullgraph():
    """torch.compile cannot trace warnings.warn: there the old name is mapped silently (the eager call warns)."""
    torch._dynamo.reset()
    layer, (v, a) = _interaction(), _forward_inputs("Audio")
    compiled = torch.compile(lambda v, a: layer(video=v, audio=a), fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(v, a), layer(visual=v, audio=a))


ATTRIBUTES = [
    (lambda: avattn.DMRN(4), "num_blocks", "num_layers"),
    (lambda: avattn.InternalTemporalRelation(5, 8, num_heads=2), "in_dim", "input_dim"),
    (lambda: avattn.SegmentClassifier(5), "in_dim", "input_dim"),
    (lambda: avattn.RelationAwareModule(5, 6, 8, num_heads=2), "query_dim", "input_dim"),
]


@pytest.mark.parametrize("make, old, new", ATTRIBUTES, ids=[f"{old}" for _, old, _ in ATTRIBUTES])
def test_old_attribute_warns_and_reads_the_new_one(make, old, new):
    layer = make()
    with pytest.warns(DeprecationWarning, match=rf"attribute '{old}' is deprecated .*; use '{new}'"):
        assert getattr(layer, old) == getattr(layer, new)


@pytest.mark.parametrize("module", ["avattn", "avattn.layers", "avattn.layers.cmra"])
def test_attention_maps_is_the_attention_weights_class_with_a_warning(module):
    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=r"'AttentionMaps' is deprecated .*; use 'AttentionWeights'"):
        old = mod.AttentionMaps
    assert old is avattn.AttentionWeights
    q = torch.randn(2, 3, 8)
    _, maps = avattn.CrossModalRelationAttention(8, 2)(q, [q], return_weights=True)
    assert isinstance(maps, old)


def test_unknown_names_are_still_attribute_errors():
    for module in (avattn, avattn.layers, importlib.import_module("avattn.layers._checks")):
        with pytest.raises(AttributeError, match=r"has no attribute 'NoSuchName'"):
            module.NoSuchName  # noqa: B018


def test_the_examples_imports_of_today_keep_working():
    """The example's non-public imports resolve to the public names until it switches to them."""
    from avattn.layers.fused_visual import fused_projected_agsca
    from avattn.losses import check_label_range

    assert fused_projected_agsca is avattn.fused_projected_agsca
    assert check_label_range is avattn.check_label_range
    with pytest.warns(DeprecationWarning, match=r"'check_input_dtypes' is deprecated .*; use 'avattn.check_input_dtypes'"):
        from avattn.layers._checks import check_input_dtypes
    assert check_input_dtypes is avattn.check_input_dtypes


def test_new_names_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        layer = avattn.RelationAwareModule(input_dim=5, other_dim=6, dim=8, num_layers=1, num_heads=2, ffn_dim=16)
        layer(torch.randn(2, 3, 5), torch.randn(2, 3, 6))
        avattn.AudioVideoInteraction(8, 2)(visual=torch.randn(2, 3, 8), audio=torch.randn(2, 3, 8))
        avattn.InternalTemporalRelation(5, 8, num_heads=2)(torch.randn(2, 3, 5), key_padding_masks=[MASK])
        avattn.DMRN(4, num_layers=2)
        avattn.SegmentClassifier(input_dim=5)
