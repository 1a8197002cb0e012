"""Plain-torch transcriptions shared by the AVEL and PSP reference tests, on the reference's key names."""

from __future__ import annotations

import torch


def lstm_direction(x, sd, name, suffix, reverse):
    w_ih, w_hh = sd[f"{name}.weight_ih_l0{suffix}"], sd[f"{name}.weight_hh_l0{suffix}"]
    b = sd[f"{name}.bias_ih_l0{suffix}"] + sd[f"{name}.bias_hh_l0{suffix}"]
    hidden = w_hh.shape[1]
    h = c = x.new_zeros(x.shape[0], hidden)
    out = [None] * x.shape[1]
    for t in reversed(range(x.shape[1])) if reverse else range(x.shape[1]):
        z = x[:, t] @ w_ih.T + h @ w_hh.T + b
        i, f, gg, o = (z[:, k * hidden:(k + 1) * hidden] for k in range(4))
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
        h = torch.sigmoid(o) * torch.tanh(c)
        out[t] = h
    return torch.stack(out, dim=1)


def bilstm(x, sd, name):
    """nn.LSTM(batch_first, bidirectional) from zero states: [forward h_t ; backward h_t]."""
    return torch.cat([lstm_direction(x, sd, name, "", False), lstm_direction(x, sd, name, "_reverse", True)], -1)


def assert_equal_outputs_and_input_grads(pairs, inputs):
    """Each (ours, reference) output pair equal, and the input gradients of one random projection of all of them."""
    for got, want in pairs:
        torch.testing.assert_close(got, want)
    seeds = [torch.randn_like(want) for _, want in pairs]
    g_ours = torch.autograd.grad(sum((got * w).sum() for (got, _), w in zip(pairs, seeds)), inputs)
    g_ref = torch.autograd.grad(sum((want * w).sum() for (_, want), w in zip(pairs, seeds)), inputs)
    for g, r in zip(g_ours, g_ref):
        torch.testing.assert_close(g, r)
