"""BiLSTMEncoder against a float64 step-by-step transcription of the LSTM equations, and against nn.LSTM.

Axis legend: B batch, T segments, E input width, H hidden width per direction.
"""

import math

import pytest
import torch
import torch.nn as nn
from layer_equations import SHAPES, D, assert_same_forward_and_grads, rand

import avattn


def lstm_direction(x, w_ih, w_hh, b_ih, b_hh, reverse):
    """One LSTM direction, step by step: gates i, f, g, o from zero (h, c)."""
    B, T, _ = x.shape
    H = w_hh.shape[1]
    h, c = x.new_zeros(B, H), x.new_zeros(B, H)
    out = [None] * T
    for t in reversed(range(T)) if reverse else range(T):
        z = x[:, t] @ w_ih.T + h @ w_hh.T
        if b_ih is not None:
            z = z + b_ih + b_hh
        i, f, g, o = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        out[t] = h
    return torch.stack(out, dim=1)


def bilstm_equations(enc, x):
    p = dict(enc.named_parameters())
    for layer in range(enc.num_layers):
        x = torch.cat(
            [
                lstm_direction(
                    x,
                    p[f"weight_ih_l{layer}{s}"],
                    p[f"weight_hh_l{layer}{s}"],
                    p.get(f"bias_ih_l{layer}{s}"),
                    p.get(f"bias_hh_l{layer}{s}"),
                    reverse=bool(s),
                )
                for s in ("", "_reverse")
            ],
            dim=-1,
        )
    return x


@pytest.mark.parametrize("B,T", SHAPES)
@pytest.mark.parametrize("num_layers,bias", [(1, True), (2, True), (1, False)])
def test_bilstm_matches_equations(B, T, num_layers, bias):
    enc = avattn.BiLSTMEncoder(6, 4, num_layers=num_layers, bias=bias, dtype=D)
    x = rand(B, T, 6)
    assert enc(x).shape == (B, T, 8)
    assert_same_forward_and_grads(enc, lambda x: bilstm_equations(enc, x), [x], list(enc.parameters()))


@pytest.mark.parametrize("num_layers,bias", [(1, True), (2, False)])
def test_bilstm_unrolled_path_matches_equations(monkeypatch, num_layers, bias):
    """The time-unrolled recurrence that torch.compile traces, run eagerly."""
    enc = avattn.BiLSTMEncoder(5, 3, num_layers=num_layers, bias=bias, dtype=D)
    x = rand(3, 7, 5)
    expected = enc(x)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert_same_forward_and_grads(enc, lambda x: bilstm_equations(enc, x), [x], list(enc.parameters()))
    torch.testing.assert_close(enc(x), expected)


def test_bilstm_passes_gradcheck_in_float64():
    enc = avattn.BiLSTMEncoder(3, 2, dtype=D)
    assert torch.autograd.gradcheck(enc, (rand(2, 3, 3),))


@pytest.mark.parametrize("dtype", [torch.float32, D])
def test_bilstm_is_nn_lstm(dtype):
    """Same parameter names, shapes and order as nn.LSTM(batch_first, bidirectional); the state dicts
    load into each other; outputs equal nn.LSTM's from no state and from explicit zero states."""
    lstm = nn.LSTM(12, 8, 1, batch_first=True, bidirectional=True, dtype=dtype)
    enc = avattn.BiLSTMEncoder(12, 8, dtype=dtype)
    assert [(n, p.shape) for n, p in enc.named_parameters()] == [(n, p.shape) for n, p in lstm.named_parameters()]
    enc.load_state_dict(lstm.state_dict())
    x = torch.randn(3, 9, 12, dtype=dtype)
    zeros = torch.zeros(2, 3, 8, dtype=dtype)
    torch.testing.assert_close(enc(x), lstm(x)[0], rtol=0, atol=0)
    torch.testing.assert_close(enc(x), lstm(x, (zeros, zeros))[0], rtol=0, atol=0)
    fresh = avattn.BiLSTMEncoder(12, 8, dtype=dtype)
    lstm.load_state_dict(fresh.state_dict())  # and the other way
    torch.testing.assert_close(fresh(x), lstm(x)[0], rtol=0, atol=0)


def test_bilstm_runs_in_float32_under_cpu_float16_autocast():
    """oneDNN has no fp16 LSTM on CPU: under fp16 autocast the encoder gives its float32 result, gradients too."""
    enc = avattn.BiLSTMEncoder(5, 4, num_layers=2)
    x = torch.randn(2, 7, 5, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.float16):
        got = enc(x.half())  # a half input (an fp16 layer before it) as well
    want = enc(x.half().float())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    (g,) = torch.autograd.grad(got.sum(), x)
    (w,) = torch.autograd.grad(want.sum(), x)
    torch.testing.assert_close(g, w, rtol=0, atol=0)


def test_bilstm_init_like_nn_lstm():
    enc = avattn.BiLSTMEncoder(20, 16)
    bound = 1 / math.sqrt(16)
    for name, p in enc.named_parameters():
        assert p.abs().max() <= bound, name
        assert p.std() > bound / 2, name  # uniform on +-bound has std bound/sqrt(3)


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda: avattn.BiLSTMEncoder(0), ValueError, r"input_dim must be an integer >= 1, got 0"),
        (lambda: avattn.BiLSTMEncoder(8, 2.5), ValueError, r"hidden_dim must be an integer >= 1, got 2.5"),
        (lambda: avattn.BiLSTMEncoder(8, num_layers=0), ValueError, r"num_layers must be an integer >= 1, got 0"),
        (lambda: avattn.BiLSTMEncoder(8, bias=1), ValueError, r"bias must be True or False, got 1"),
        (
            lambda: avattn.BiLSTMEncoder(8)(torch.randn(2, 3, 7)),
            ValueError,
            r"x must have shape \(B, T, 8\), got \(2, 3, 7\)",
        ),
        (
            lambda: avattn.BiLSTMEncoder(8)(torch.randn(2, 8)),
            ValueError,
            r"x must have 3 dims \(B, T, 8\), got shape \(2, 8\)",
        ),
        (
            lambda: avattn.BiLSTMEncoder(8)(torch.randn(2, 0, 8)),
            ValueError,
            r"x must have at least one time step \(B, T >= 1, 8\), got \(2, 0, 8\)",
        ),
        (
            lambda: avattn.BiLSTMEncoder(8)(torch.ones(2, 3, 8, dtype=torch.long)),
            TypeError,
            r"x must be a floating tensor",
        ),
    ],
)
def test_bilstm_argument_errors_name_the_argument(call, exc, pattern):
    """Constructor and forward arguments: the error names the argument, what it got and what it expects."""
    with pytest.raises(exc, match=pattern):
        call()
