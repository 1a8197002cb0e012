"""CrossModalRelationAttention starts as nn.MultiheadAttention does; CMRAN's init="reference" option."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

import avattn
from examples.ave.checks import ConfigError
from examples.cmran.config import CMRANConfig
from examples.cmran.model import CMRAN

DRAWS = 40


def _ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = a.flatten().double().sort().values, b.flatten().double().sort().values
    grid = torch.cat([a, b])
    cdf_a = torch.searchsorted(a, grid, right=True) / a.numel()
    cdf_b = torch.searchsorted(b, grid, right=True) / b.numel()
    return float((cdf_a - cdf_b).abs().max())


def _ks_critical(n: int, m: int, alpha: float = 1e-4) -> float:
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))


def _pooled(make, names, draws: int = DRAWS) -> dict[str, torch.Tensor]:
    """Each named parameter over `draws` freshly seeded modules, concatenated."""
    out = {n: [] for n in names}
    for seed in range(draws):
        torch.manual_seed(1000 + seed)
        params = make()
        for n in names:
            out[n].append(params[n].detach().flatten())
    return {n: torch.cat(v) for n, v in out.items()}


@pytest.mark.parametrize("dim, heads, memory_dim", [(48, 4, None), (40, 2, 96)])
def test_weights_are_drawn_like_multihead_attention(dim, heads, memory_dim):
    kdim = dim if memory_dim is None else memory_dim

    def ours():
        m = avattn.CrossModalRelationAttention(dim, heads, memory_dim=memory_dim)
        kv = m.kv_proj.weight
        return {"q": m.q_proj.weight, "k": kv[:dim], "v": kv[dim:], "out": m.out_proj.weight}

    def theirs():
        m = nn.MultiheadAttention(dim, heads, kdim=kdim, vdim=kdim)
        if m._qkv_same_embed_dim:
            q, k, v = m.in_proj_weight.chunk(3)
        else:
            q, k, v = m.q_proj_weight, m.k_proj_weight, m.v_proj_weight
        return {"q": q, "k": k, "v": v, "out": m.out_proj.weight}

    names = ("q", "k", "v", "out")
    a, b = _pooled(ours, names), _pooled(theirs, names)
    for n in names:
        assert a[n].shape == b[n].shape
        d = _ks_statistic(a[n], b[n])
        assert d < _ks_critical(a[n].numel(), b[n].numel()), f"{n}: KS statistic {d:.4f}"
        torch.testing.assert_close(a[n].std(), b[n].std(), rtol=0.02, atol=0)
    # the bounds themselves: one packed (3E, E) matrix, or q (E, E) and k, v (E, kdim) on their own
    q_bound = math.sqrt(6 / (dim + 3 * dim)) if memory_dim is None else math.sqrt(6 / (2 * dim))
    kv_bound = math.sqrt(6 / (dim + 3 * dim)) if memory_dim is None else math.sqrt(6 / (dim + kdim))
    for n, bound in (("q", q_bound), ("k", kv_bound), ("v", kv_bound), ("out", 1 / math.sqrt(dim))):
        assert a[n].abs().max() <= bound
        assert a[n].abs().max() > 0.99 * bound, f"{n}: drawn within {a[n].abs().max():.4f} of bound {bound:.4f}"


@pytest.mark.parametrize("cls", [avattn.CrossModalRelationAttention, avattn.FeatureConcatCMRA])
def test_biases_start_at_zero_and_reset_parameters_redraws(cls):
    torch.manual_seed(0)
    m = cls(32, 4, dtype=torch.float64)
    for proj in (m.q_proj, m.kv_proj, m.out_proj):
        assert proj.bias.dtype == torch.float64
        assert not proj.bias.any()
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(3.0)
    before = m.q_proj.weight.clone()
    m.reset_parameters()
    assert not m.q_proj.bias.any() and not m.kv_proj.bias.any() and not m.out_proj.bias.any()
    assert not torch.equal(before, m.q_proj.weight)
    bound = math.sqrt(6 / (32 + m.memory_dim)) if m.memory_dim != 32 else math.sqrt(6 / (4 * 32))
    assert m.kv_proj.weight.abs().max() <= bound
    # bias=False builds no biases and initialises all the same
    assert cls(32, 4, bias=False).q_proj.bias is None


def test_every_relation_attention_of_cmran_starts_like_multihead_attention():
    torch.manual_seed(0)
    model = CMRAN()
    attentions = [m for m in model.modules() if isinstance(m, avattn.CrossModalRelationAttention)]
    assert len(attentions) == 2 * (2 + 1) + 1  # two ITRs of 2 layers, two CMRA layers, the interaction
    for m in attentions:
        assert not m.q_proj.bias.any() and not m.kv_proj.bias.any() and not m.out_proj.bias.any()
        assert m.q_proj.weight.abs().max() <= math.sqrt(6 / (4 * 256))


def _itrs(model):
    return [m for m in model.modules() if isinstance(m, avattn.InternalTemporalRelation)]


@pytest.mark.parametrize("kw", [{}, {"setting": "weak"}, {"itr_layers": 3}, {"arch": "audio_visual"}])
def test_reference_init_starts_stacked_itr_layers_identical(kw):
    torch.manual_seed(0)
    ref = CMRAN(CMRANConfig(init="reference", **kw))
    torch.manual_seed(0)
    default = CMRAN(CMRANConfig(**kw))
    assert len(_itrs(ref)) == 2
    for itr_ref, itr_def in zip(_itrs(ref), _itrs(default)):
        first = itr_ref.layers[0].state_dict()
        for layer in itr_ref.layers[1:]:
            for name, p in layer.state_dict().items():
                assert torch.equal(p, first[name]), name
                assert p.data_ptr() != first[name].data_ptr()  # copies, not shared: they train apart
        # the default draws each layer on its own
        assert not torch.equal(itr_def.layers[0].attn.q_proj.weight, itr_def.layers[1].attn.q_proj.weight)
    # the two modality ITRs stay different from each other
    a, b = _itrs(ref)
    assert not torch.equal(a.layers[0].attn.q_proj.weight, b.layers[0].attn.q_proj.weight)


@pytest.mark.parametrize("kw", [{"cmra": "self"}, {"cmra": "none"}, {"itr_layers": 1}, {"itr_layers": 0}])
def test_reference_init_without_stacked_layers_fails_loudly(kw):
    with pytest.raises(ConfigError, match="init='reference' has no effect"):
        CMRANConfig(init="reference", **kw)
    with pytest.raises(ConfigError, match="init must be one of"):
        CMRANConfig(init="xavier")


def test_init_round_trips_and_the_cli_passes_it():
    from examples.ave.cli import build_parser
    from examples.ave.train import configs_from_args

    cfg = CMRANConfig(init="reference")
    assert CMRANConfig.from_dict(cfg.to_dict()) == cfg
    assert CMRANConfig.from_dict({k: v for k, v in cfg.to_dict().items() if k != "init"}).init == "default"
    args = build_parser().parse_args(["train", "--init", "reference", "--out", "/nonexistent/run"])
    assert configs_from_args(args)[0].init == "reference"
