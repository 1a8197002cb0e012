"""Helpers shared by the tests that check layers against float64 transcriptions of their equations.

Axis legend: B batch, T segments (time steps), E feature width.
"""

import torch

D = torch.float64
SHAPES = [(1, 1), (1, 5), (3, 10), (3, 7)]  # (B, T): T=1, odd T, batch 1 and 3


def rand(*shape, grad=True):
    """A float64 standard-normal tensor that records gradients unless ``grad=False``."""
    return torch.randn(*shape, dtype=D, requires_grad=grad)


def lin(layer, x):
    """x W^T + b of an nn.Linear, written out (no bias term where the layer has none)."""
    y = x @ layer.weight.T
    return y if layer.bias is None else y + layer.bias


def grads(out, inputs, seed_tensor):
    """Gradients of <out, seed_tensor> with respect to inputs (None where unused)."""
    return torch.autograd.grad((out * seed_tensor).sum(), inputs, allow_unused=True)


def assert_same_forward_and_grads(layer_fn, ref_fn, inputs, params):
    """layer_fn and ref_fn agree on ``inputs``, and so do the gradients of one random projection of
    their outputs with respect to the inputs and ``params``."""
    out, ref = layer_fn(*inputs), ref_fn(*inputs)
    torch.testing.assert_close(out, ref)
    seed = torch.randn_like(ref)
    for g, r in zip(grads(out, [*inputs, *params], seed), grads(ref, [*inputs, *params], seed), strict=True):
        torch.testing.assert_close(g, r)
