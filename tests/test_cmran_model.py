"""CMRAN example model: configs, every ablation, used-only parameters, and the equations in float64.

Axis legend: b batch, t segments, n cells, c visual channels, e model dim, k classes.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from cli_checks import one_thread  # noqa: F401  (the fixture acts where imported)
from layer_equations import lin

import avattn
from examples.ave.checks import ConfigError
from examples.ave.config import TrainConfig
from examples.ave.registry import count_parameters
from examples.cmran.config import CMRANConfig
from examples.cmran.model import CMRAN, CMRANWeights


def _inputs(cfg: CMRANConfig, b: int = 2, t: int = 10, *, dtype=torch.float32, seed: int = 0, cells: bool = False):
    g = torch.Generator().manual_seed(seed)
    shape = (b, t, 49, cfg.visual_dim) if cells else (b, t, 7, 7, cfg.visual_dim)
    visual = torch.randn(shape, generator=g, dtype=dtype).relu()
    audio = torch.randn(b, t, 128, generator=g, dtype=dtype)
    segment_labels = torch.randint(0, 29, (b, t), generator=g)
    video_labels = torch.randint(0, 28 if cfg.setting == "supervised" else 29, (b,), generator=g)
    return visual, audio, segment_labels, video_labels


# ---- configs ------------------------------------------------------------------------------------

ABLATIONS = [
    {},
    {"setting": "weak"},
    {"features": "resnet151"},
    {"setting": "weak", "features": "resnet151"},
    *({"cmra": v} for v in ("none", "self", "co", "feature_concat")),
    *({"setting": "weak", "cmra": v} for v in ("none", "self", "co", "feature_concat")),
    *({"visual_attention": v} for v in ("agva", "average")),
    {"visual_attention": "agva", "agva_audio_along_cells": True},
    *({"interaction": v} for v in ("none", "self")),
    *({"itr_layers": n} for n in (0, 1, 3, 4)),
    *({"arch": a} for a in ("audio_only", "visual_only", "audio_visual", "audio_visual_agva")),
    {"arch": "audio_visual", "setting": "weak"},
    {"visual_proj": False},
    {"setting": "weak", "weak_loss_on": "logits"},
]


def _id(kw: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in kw.items()) or "default"


def test_default_parameter_count_is_the_used_part_of_the_reference():
    # The reference implementation registers 15.86 M parameters of which 9.51 M are used.
    model = CMRAN()
    assert count_parameters(model) == 9_509_150
    assert abs(count_parameters(model) / 1e6 - 9.51) < 0.01
    assert count_parameters(CMRAN(CMRANConfig(features="resnet151"))) == 9_509_150 + (2048 - 512) * 512
    assert count_parameters(CMRAN(CMRANConfig(setting="weak"))) == 9_509_150 + 257  # 29-way classifier


@pytest.mark.parametrize("kw", ABLATIONS, ids=_id)
def test_every_ablation_runs_and_uses_every_parameter(kw):
    cfg = CMRANConfig(**kw)
    torch.manual_seed(0)
    model = CMRAN(cfg)
    visual, audio, seg, vid = _inputs(cfg)
    out = model(visual, audio)
    assert out.event_logits.shape == (2, 10)
    assert out.class_logits.shape == (2, 28 if cfg.setting == "supervised" else 29)
    loss = model.loss(out, seg, vid)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not unused, f"registered but unused (no gradient): {unused}"
    pred = model.predict(out)
    assert pred.shape == (2, 10) and pred.dtype == torch.int64
    assert ((pred >= 0) & (pred <= 28)).all()


def test_ablations_build_what_they_say():
    assert CMRAN(CMRANConfig(cmra="none")).audio_relation.itr is None
    assert CMRAN(CMRANConfig(cmra="self")).video_relation.itr is None
    assert CMRAN(CMRANConfig(interaction="none")).interaction.relation is None
    assert len(CMRAN(CMRANConfig(itr_layers=3)).audio_relation.itr.layers) == 3
    assert CMRAN(CMRANConfig(setting="weak")).interaction.relation.attn.num_heads == 2
    assert CMRAN(CMRANConfig()).interaction.relation.attn.num_heads == 4
    assert type(CMRAN(CMRANConfig(visual_attention="average")).visual_attention).__name__ == "SpatialAverage"
    assert type(CMRAN(CMRANConfig(arch="audio_visual_agva")).visual_attention).__name__ == "AGVA"
    audio_only = CMRAN(CMRANConfig(arch="audio_only"))
    assert audio_only.visual_attention is None and audio_only.video_encoder is None
    # the pre-projection only changes the first layer; without it AGSCA reads C_v channels
    assert CMRAN(CMRANConfig(visual_proj=False)).visual_attention.channel.visual_dim == 512
    assert CMRAN(CMRANConfig(visual_proj=False, features="resnet151")).visual_attention.channel.visual_dim == 2048


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"arch": "audio_only", "cmra": "self"}, "does not apply to the baseline"),
        ({"arch": "audio_visual", "visual_attention": "agva"}, "does not apply"),
        ({"cmra": "bogus"}, "cmra must be one of"),
        ({"visual_attention": "sum"}, "visual_attention must be one of"),
        ({"interaction": "co"}, "interaction must be one of"),
        ({"arch": "lstm"}, "arch must be one of"),
        ({"setting": "semi"}, "setting must be one of"),
        ({"features": "vgg16"}, "features must be one of"),
        ({"itr_layers": -1}, "itr_layers"),
        ({"interaction_heads": 3}, "divisible"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout_impl": "fast"}, r"dropout_impl must be one of \('bit', 'torch'\), got 'fast'"),
        ({"weak_loss_on": "logits"}, "only to setting='weak'"),
        ({"agva_audio_along_cells": True}, "needs visual_attention='agva'"),
        ({"cmra": "none", "itr_layers": 2}, "has no effect"),
        ({"cmra": "self", "itr_layers": 0}, "has no effect"),
        ({"interaction": "none", "interaction_heads": 4}, "has no effect"),
        ({"arch": "audio_visual", "interaction_heads": 2}, "has no effect"),
        ({"backend": "triton"}, "applies no attention dropout"),
    ],
)
def test_bad_model_configs_fail_loudly(kw, match):
    with pytest.raises(ConfigError, match=match):
        CMRANConfig(**kw)


def test_configs_round_trip_and_resolve_the_recipe():
    for kw in ABLATIONS:
        cfg = CMRANConfig(**kw)
        assert CMRANConfig.from_dict(cfg.to_dict()) == cfg
    assert CMRANConfig(setting="weak").interaction_heads == 2
    assert CMRANConfig().itr_layers == 2 and CMRANConfig(arch="audio_only").itr_layers == 2
    assert CMRANConfig(cmra="self").itr_layers is None and CMRANConfig(interaction="none").interaction_heads is None
    sup = TrainConfig().resolve("supervised")
    weak = TrainConfig().resolve("weak")
    assert (sup.lr_milestones, sup.grad_clip, sup.lr, sup.batch_size) == ((10, 20, 30), 0.1, 5e-4, 32)
    assert (weak.lr_milestones, weak.grad_clip) == ((5, 20, 40), 0.5)
    assert TrainConfig.from_dict(sup.to_dict()) == sup
    # configs written before dropout_impl / adam_impl existed read back as what those runs used
    old_model = {k: v for k, v in CMRANConfig().to_dict().items() if k != "dropout_impl"}
    assert CMRANConfig.from_dict(old_model).dropout_impl == "torch" and CMRANConfig().dropout_impl == "bit"
    old_train = {k: v for k, v in sup.to_dict().items() if k != "adam_impl"}
    assert TrainConfig.from_dict(old_train).adam_impl == "for" and sup.adam_impl == "fused"
    with pytest.raises(ConfigError, match="unknown fields"):
        CMRANConfig.from_dict({"setting": "weak", "heads": 3})


def test_task_constants_have_one_source():
    import avattn
    from examples.ave import constants, data

    assert data.VISUAL_DIMS is constants.VISUAL_DIMS and data.NUM_CLASSES is constants.NUM_CLASSES
    assert (constants.NUM_EVENT_CLASSES, constants.BACKGROUND) == (28, avattn.BACKGROUND)


def test_bad_inputs_name_the_argument():
    model = CMRAN()
    visual, audio, _, _ = _inputs(CMRANConfig())
    with pytest.raises(ValueError, match=r"visual must have shape .*2048|visual must have shape .*512"):
        model(torch.zeros(2, 10, 7, 7, 2048), audio)
    with pytest.raises(ValueError, match="audio must"):
        model(visual, audio[:, :9])
    with pytest.raises(ValueError, match="visual must be a float tensor"):
        model(visual[..., 0, 0, :].long(), audio)


# ---- forward details ----------------------------------------------------------------------------

@pytest.mark.parametrize("setting", ["supervised", "weak"])
def test_return_weights_and_cell_layout(setting):
    cfg = CMRANConfig(setting=setting)
    torch.manual_seed(0)
    model = CMRAN(cfg).eval()
    visual, audio, _, _ = _inputs(cfg, b=3, t=10)
    with torch.no_grad():
        plain = model(visual, audio)
        out, w = model(visual, audio, return_weights=True)
        flat = model(visual.flatten(2, 3), audio)
    assert isinstance(w, CMRANWeights)
    for a, b in zip(plain, out):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(plain, flat):
        torch.testing.assert_close(a, b)
    assert w.spatial.shape == (3, 10, 7, 7)
    torch.testing.assert_close(w.spatial.sum((-2, -1)), torch.ones(3, 10))
    assert w.channel.shape == (3, 10, 512) and ((w.channel > 0) & (w.channel < 1)).all()
    for maps, heads in ((w.audio_relation, 4), (w.video_relation, 4), (w.interaction, cfg.interaction_heads)):
        assert maps.weights.shape == (3, heads, 10, 20) and maps.source_lengths == (10, 10)
        torch.testing.assert_close(maps.weights.sum(-1), torch.ones(3, heads, 10))


def test_supervised_loss_and_prediction_rule():
    cfg = CMRANConfig()
    model = CMRAN(cfg)
    visual, audio, seg, vid = _inputs(cfg, b=4)
    out = model(visual, audio)
    expected = F.binary_cross_entropy_with_logits(out.event_logits, (seg != 28).float()) + F.cross_entropy(
        out.class_logits, vid
    )
    torch.testing.assert_close(model.loss(out, seg, vid), expected)
    pred = model.predict(out)
    cat = out.class_logits.argmax(-1, keepdim=True).expand(-1, 10)
    torch.testing.assert_close(pred, torch.where(torch.sigmoid(out.event_logits) > 0.5, cat, torch.full_like(cat, 28)))


def test_weak_loss_reads_scores_or_logits():
    torch.manual_seed(0)
    scores_model = CMRAN(CMRANConfig(setting="weak"))
    logits_model = CMRAN(CMRANConfig(setting="weak", weak_loss_on="logits"))
    logits_model.load_state_dict(scores_model.state_dict())
    visual, audio, seg, vid = _inputs(scores_model.config, b=3)
    out = scores_model(visual, audio)
    onehot = F.one_hot(vid, 29).float()
    torch.testing.assert_close(scores_model.loss(out, seg, vid), F.multilabel_soft_margin_loss(out.video_scores, onehot))
    torch.testing.assert_close(logits_model.loss(out, seg, vid), F.multilabel_soft_margin_loss(out.video_logits, onehot))


# ---- the paper's equations (docs/cmran.md), transcribed in plain torch ----------------------------

def _ln(x, m):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + m.eps) * m.weight + m.bias


def _mha(x, memory, attn, heads):
    """softmax(q k^T / sqrt(d)) v per head; k, v from the packed kv projection (keys first)."""
    b, t, e = x.shape
    d = e // heads
    q = lin(attn.q_proj, x)
    kv = lin(attn.kv_proj, memory)
    k, v = kv[..., :e], kv[..., e:]

    def split(z):
        return z.reshape(b, z.shape[1], heads, d).transpose(1, 2)  # (b, h, steps, d)

    w = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(d), dim=-1)
    o = (w @ split(v)).transpose(1, 2).reshape(b, t, e)
    return lin(attn.out_proj, o)


def _relation_layer(x, memory, layer, heads):
    """x = LN(x + Attn(x, mem)); x = LN(x + W2 ReLU(W1 x))  (post-norm, eval: no dropout)."""
    x = _ln(x + _mha(x, memory, layer.attn, heads), layer.norm1)
    if layer.ffn is None:
        return x
    w1, w2 = layer.ffn.net[0], layer.ffn.net[3]
    return _ln(x + lin(w2, torch.relu(lin(w1, x))), layer.norm2)


def _itr(x, itr, heads):
    x = lin(itr.proj, x)
    for layer in itr.layers:
        x = _relation_layer(x, x, layer, heads)
    return x


def _cmrn_equations(m: CMRAN, visual, audio):
    b, t = audio.shape[:2]
    # 1. pre-projection on every cell
    v = torch.relu(lin(m.visual_proj[0], visual.reshape(b, t, 49, -1)))
    # 2. AGSCA: channel, then spatial
    ch, sp = m.visual_attention.channel, m.visual_attention.spatial
    g = (torch.relu(lin(ch.audio_proj, audio))[:, :, None] * torch.relu(lin(ch.visual_proj, v))).mean(2)
    m_c = torch.sigmoid(lin(ch.excite, torch.relu(lin(ch.squeeze, g))))
    v_c = v * (m_c[:, :, None] + 1)
    x = torch.tanh(lin(sp.score, torch.relu(lin(sp.visual_proj, v_c)) * torch.relu(lin(sp.audio_proj, audio))[:, :, None]))
    m_s = torch.softmax(x.squeeze(-1), dim=-1)
    v_att = (m_s[..., None] * v_c).sum(2)
    # 3. relation-aware modules: memory [ITR(other) ; projected query]
    ram_a, ram_v = m.audio_relation, m.video_relation
    q_a = lin(ram_a.query_proj, audio)
    a_o = _relation_layer(q_a, torch.cat([_itr(v_att, ram_a.itr, 4), q_a], 1), ram_a.relation, 4)
    q_v = lin(ram_v.query_proj, v_att)
    v_o = _relation_layer(q_v, torch.cat([_itr(audio, ram_v.itr, 4), q_v], 1), ram_v.relation, 4)
    # 4. AV interaction: f = v_o * a_o attends to [a_o ; v_o], no FFN
    f = v_o * a_o
    heads = 4 if m.config.setting == "supervised" else 2
    o = _ln(f + _mha(f, torch.cat([a_o, v_o], 1), m.interaction.relation.attn, heads), m.interaction.relation.norm1)
    # 5. heads
    s = lin(m.head.relevance, o).squeeze(-1)
    c = lin(m.head.classifier, o.max(1).values)
    if m.config.setting == "supervised":
        return s, c
    video_logits = (torch.sigmoid(s)[:, :, None] * c[:, None]).max(1).values
    return s, c, video_logits, torch.softmax(video_logits, -1)


@pytest.mark.parametrize("setting", ["supervised", "weak"])
def test_forward_equals_the_equations_in_float64(setting):
    cfg = CMRANConfig(setting=setting)
    torch.manual_seed(1)
    model = CMRAN(cfg, dtype=torch.float64).eval()
    visual, audio, _, _ = _inputs(cfg, b=3, dtype=torch.float64, seed=3)
    with torch.no_grad():
        got = model(visual, audio)
        want = _cmrn_equations(model, visual, audio)
    assert len(got) == len(want)
    for name, a, b in zip(got._fields, got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=lambda m, name=name: f"{name}: {m}")


def test_dropout_impl_changes_only_the_relation_layers_masks():
    """bit: BitDropout at every nn.Dropout of the relation layers; with p = 0 the same step in float64."""
    torch.manual_seed(0)
    ref = CMRAN(CMRANConfig(dropout_impl="torch", dropout=0.0, visual_dropout=0.0), dtype=torch.float64)
    bit = CMRAN(CMRANConfig(dropout_impl="bit", dropout=0.0, visual_dropout=0.0), dtype=torch.float64)
    bit.load_state_dict(ref.state_dict())
    n_torch = sum(type(m) is torch.nn.Dropout for m in ref.modules())
    assert n_torch == 13  # 6 layers x (residual dropout, feed-forward hidden) + the interaction layer
    assert sum(type(m) is torch.nn.Dropout for m in bit.modules()) == 0
    assert sum(isinstance(m, avattn.BitDropout) for m in bit.modules()) == n_torch + 1  # + the visual map's
    visual, audio = torch.rand(2, 10, 7, 7, 512, dtype=torch.float64), torch.rand(2, 10, 128, dtype=torch.float64)
    a, b = ref.train()(visual, audio), bit.train()(visual, audio)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    ga = torch.autograd.grad(sum(x.sum() for x in a), list(ref.parameters()))
    gb = torch.autograd.grad(sum(x.sum() for x in b), list(bit.parameters()))
    assert all(torch.equal(x, y) for x, y in zip(ga, gb))
