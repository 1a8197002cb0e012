"""BitDropout: the distribution of nn.Dropout, exact scaling, gradients through the same mask."""

import math

import pytest
import torch

import avattn


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_keep_rate_and_scaling(p):
    x = torch.rand(64, 10, 49, 8, dtype=torch.float64) + 0.5  # strictly positive: zeros mean dropped
    y = avattn.bit_dropout(x, p)
    kept = y != 0
    n = x.numel()
    # 5 standard deviations of a binomial keep count
    assert abs(kept.double().mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))


def test_masks_are_independent_between_calls_and_seeded():
    x = torch.ones(4096)
    torch.manual_seed(3)
    a, b = avattn.bit_dropout(x, 0.5), avattn.bit_dropout(x, 0.5)
    torch.manual_seed(3)
    a2 = avattn.bit_dropout(x, 0.5)
    assert torch.equal(a, a2)
    agree = ((a != 0) == (b != 0)).double().mean()
    assert 0.45 < agree < 0.55  # independent masks agree half of the time
    # neighbouring elements (which share a 64-bit word) are uncorrelated
    k = (a != 0).double()
    corr = torch.corrcoef(torch.stack([k[0::2], k[1::2]]))[0, 1]
    assert abs(corr) < 0.1


def test_gradient_uses_the_same_mask():
    x = torch.randn(8, 33, dtype=torch.float64, requires_grad=True)
    y = avattn.bit_dropout(x, 0.3)
    (g,) = torch.autograd.grad(y.sum(), x)
    expected = (y != 0).double() / 0.7
    torch.testing.assert_close(g, expected)


def test_module_eval_identity_and_errors():
    m = avattn.BitDropout(0.2)
    x = torch.randn(5, 7)
    assert torch.equal(m.eval()(x), x)
    assert torch.equal(avattn.bit_dropout(x, 0.0), x)
    with pytest.raises(ValueError, match=r"p must be a number in \[0, 1\), got 1.0"):
        avattn.BitDropout(1.0)
    assert "p=0.2" in repr(m)


def test_bit_dropout_compiles_fullgraph_and_scales_the_kept_values():
    torch._dynamo.reset()
    x = torch.ones(1000)
    y = torch.compile(lambda x: avattn.bit_dropout(x, 0.25), fullgraph=True, backend="aot_eager")(x)
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.75))
    assert 0 < kept.numel() < 1000


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(1,), (3, 5), (2, 7, 9)])  # element counts not a multiple of 4
def test_keep_mask_is_the_draw_compared_in_the_target_dtype(dtype, shape):
    from avattn.layers.dropout import bit_keep_mask, bit_threshold, bit_uniform16

    torch.manual_seed(11)
    mask = bit_keep_mask(shape, 0.3, dtype, torch.device("cpu"))
    torch.manual_seed(11)
    expected = (bit_uniform16(shape, torch.device("cpu")) >= bit_threshold(0.3)).to(dtype)
    assert mask.dtype == dtype and mask.shape == shape
    assert torch.equal(mask, expected)
