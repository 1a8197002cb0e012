"""DMRN against float64 transcriptions of its residual blocks, in the AVEL code's order and the paper's.

Axis legend: B batch, T segments, E feature width.
"""

import copy

import pytest
import torch
from layer_equations import SHAPES, D, assert_same_forward_and_grads, rand

import avattn


def dmrn_equations(m, v, a, swap):
    """The AVEL code's block loop (swap=True) or the paper's residual order (swap=False)."""

    def u(seq, x):
        return seq[2](torch.tanh(seq[0](x)))

    for _ in range(m.num_layers):
        merged = (u(m.visual_transform, v) + u(m.audio_transform, a)) * 0.5
        if swap:
            v, a = torch.tanh(a + merged), torch.tanh(v + merged)
        else:
            v, a = torch.tanh(v + merged), torch.tanh(a + merged)
    return (v + a) * 0.5


@pytest.mark.parametrize("B,T", SHAPES)
@pytest.mark.parametrize("num_layers,swap", [(1, True), (2, True), (3, False)])
def test_dmrn_matches_equations(B, T, num_layers, swap):
    m = avattn.DMRN(6, num_layers=num_layers, swap_residuals=swap, dtype=D)
    v, a = rand(B, T, 6), rand(B, T, 6)
    assert_same_forward_and_grads(m, lambda v, a: dmrn_equations(m, v, a, swap), [v, a], list(m.parameters()))


def test_dmrn_residual_order_matters_only_beyond_one_block():
    v, a = rand(2, 5, 6, grad=False), rand(2, 5, 6, grad=False)
    one = avattn.DMRN(6, dtype=D)
    one_paper = avattn.DMRN(6, swap_residuals=False, dtype=D)
    one_paper.load_state_dict(one.state_dict())
    torch.testing.assert_close(one(v, a), one_paper(v, a))
    two = avattn.DMRN(6, num_layers=2, dtype=D)
    two_paper = avattn.DMRN(6, num_layers=2, swap_residuals=False, dtype=D)
    two_paper.load_state_dict(two.state_dict())
    assert (two(v, a) - two_paper(v, a)).abs().max() > 1e-3


def test_dmrn_passes_gradcheck_in_float64():
    m = avattn.DMRN(4, num_layers=2, dtype=D)
    assert torch.autograd.gradcheck(m, (rand(1, 3, 4), rand(1, 3, 4)))


def test_dmrn_bfloat16_error_within_plain_torch_bfloat16_error():
    m64 = avattn.DMRN(32, num_layers=2, dtype=D)
    v, a = rand(3, 10, 32, grad=False), rand(3, 10, 32, grad=False)
    truth = m64(v, a)
    m16 = copy.deepcopy(m64).bfloat16()
    ours = m16(v.bfloat16(), a.bfloat16()).double()
    plain = dmrn_equations(m16, v.bfloat16(), a.bfloat16(), swap=True).double()
    our_err, plain_err = (ours - truth).abs().max(), (plain - truth).abs().max()
    assert 0 < plain_err < 0.1
    assert our_err <= 2 * plain_err


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda: avattn.DMRN(-1), ValueError, r"dim must be an integer >= 1, got -1"),
        (lambda: avattn.DMRN(8, num_layers=0), ValueError, r"num_layers must be an integer >= 1, got 0"),
        (lambda: avattn.DMRN(8, swap_residuals="yes"), ValueError, r"swap_residuals must be True or False, got 'yes'"),
        (
            lambda: avattn.DMRN(8)(torch.randn(2, 3, 8), torch.randn(2, 3, 6)),
            ValueError,
            r"audio must have shape \(B, T, 8\), got \(2, 3, 6\)",
        ),
        (
            lambda: avattn.DMRN(8)(torch.randn(2, 3, 8), torch.randn(2, 4, 8)),
            ValueError,
            r"audio must share \(B, T\) = \(2, 3\) with visual, got \(2, 4, 8\)",
        ),
        (
            lambda: avattn.DMRN(8)(torch.randn(3, 8), torch.randn(2, 3, 8)),
            ValueError,
            r"visual must have 3 dims \(B, T, 8\), got shape \(3, 8\)",
        ),
    ],
)
def test_dmrn_argument_errors_name_the_argument(call, exc, pattern):
    """Constructor and forward arguments: the error names the argument, what it got and what it expects."""
    with pytest.raises(exc, match=pattern):
        call()
