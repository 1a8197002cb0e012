"""AGSCA (channel, spatial), AGVA, SpatialAverage against float64 transcriptions of their equations."""

import pytest
import torch
from layer_equations import lin

import avattn


def agsca_equations(m, v, a):
    """AGSCA as the CMRAN paper (Xu et al., ACM MM 2020) defines it, per segment, in loops over (b, t)."""
    B, T, N, C = v.shape
    out = torch.zeros(B, T, C, dtype=v.dtype)
    gates = torch.zeros(B, T, C, dtype=v.dtype)
    spatial = torch.zeros(B, T, N, dtype=v.dtype)
    ch, sp = m.channel, m.spatial
    for b in range(B):
        for t in range(T):
            vv, aa = v[b, t], a[b, t]
            g = (torch.relu(lin(ch.audio_proj, aa))[None] * torch.relu(lin(ch.visual_proj, vv))).mean(0)
            mc = torch.sigmoid(lin(ch.excite, torch.relu(lin(ch.squeeze, g))))
            vc = vv * (mc + 1)
            x = torch.tanh(lin(sp.score, torch.relu(lin(sp.visual_proj, vc)) * torch.relu(lin(sp.audio_proj, aa))[None]))
            ms = x[:, 0].softmax(0)
            out[b, t] = (ms[:, None] * vc).sum(0)
            gates[b, t], spatial[b, t] = mc, ms
    return out, gates, spatial


@pytest.mark.parametrize("B,T,H,W", [(1, 1, 1, 1), (2, 3, 7, 7), (3, 5, 3, 5)])
def test_agsca_matches_equations(B, T, H, W):
    m = avattn.AGSCA(24, 10, hidden_dim=12, dtype=torch.float64)
    v, a = torch.rand(B, T, H, W, 24, dtype=torch.float64), torch.rand(B, T, 10, dtype=torch.float64)
    out, weights = m(v, a, return_weights=True)
    ref, gates, spatial = agsca_equations(m, v.flatten(2, 3), a)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(weights.channel, gates)
    torch.testing.assert_close(weights.spatial, spatial.view(B, T, H, W))
    # the flat-cell layout gives the same result
    torch.testing.assert_close(m(v.flatten(2, 3), a), ref)


def test_agsca_halves_usable_alone_and_gradients():
    m = avattn.AGSCA(16, 8, hidden_dim=8, dtype=torch.float64)
    v = torch.rand(2, 3, 5, 16, dtype=torch.float64, requires_grad=True)
    a = torch.rand(2, 3, 8, dtype=torch.float64, requires_grad=True)
    gated, gates = m.channel(v, a, return_weights=True)
    torch.testing.assert_close(gated, v * (gates + 1).unsqueeze(2))
    torch.testing.assert_close(m.spatial(gated, a), m(v, a))
    assert torch.autograd.gradcheck(lambda v, a: m(v, a), (v, a))


def agva_equations(m, v, a, along_cells):
    B, T, N, C = v.shape
    out = torch.zeros(B, T, C, dtype=v.dtype)
    for b in range(B):
        for t in range(T):
            hv = torch.relu(lin(m.visual_hidden, v[b, t]))  # (n, hidden)
            ha = torch.relu(lin(m.audio_hidden, a[b, t]))  # (hidden,)
            kv = hv @ m.visual_key.weight.T  # (n, k)
            ka = m.audio_key.weight @ ha  # (k,)
            z = (torch.tanh(kv + (ka[:, None] if along_cells else ka[None, :])) @ m.score.weight.T)[:, 0]
            out[b, t] = z.softmax(0) @ v[b, t]
    return out


@pytest.mark.parametrize("along_cells", [False, True])
def test_agva_matches_equations(along_cells):
    m = avattn.AGVA(12, 6, hidden_dim=10, attention_dim=9, audio_along_cells=along_cells, dtype=torch.float64)
    v, a = torch.rand(2, 3, 3, 3, 12, dtype=torch.float64), torch.rand(2, 3, 6, dtype=torch.float64)
    out, w = m(v, a, return_weights=True)
    torch.testing.assert_close(out, agva_equations(m, v.flatten(2, 3), a, along_cells))
    torch.testing.assert_close(w.sum((-1, -2)), torch.ones(2, 3, dtype=torch.float64))


def test_agva_audio_along_cells_needs_k_equal_cells():
    m = avattn.AGVA(12, 6, attention_dim=49, audio_along_cells=True)
    with pytest.raises(ValueError, match=r"attention_dim == number of cells, got attention_dim=49 .* \(9 cells\)"):
        m(torch.rand(1, 2, 3, 3, 12), torch.rand(1, 2, 6))


def test_spatial_average_is_the_mean_over_the_cells():
    v = torch.rand(2, 3, 4, 4, 8, dtype=torch.float64)
    torch.testing.assert_close(avattn.SpatialAverage(8, 5)(v, torch.rand(2, 3, 5)), v.mean((2, 3)))


@pytest.mark.parametrize("cls", [avattn.AGSCA, avattn.AGVA])
def test_device_dtype_factory_kwargs(cls):
    m = cls(8, 4, device="cpu", dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in m.parameters())
