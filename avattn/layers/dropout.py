"""BitDropout: inverted dropout with a mask cut from 64-bit random words.

Same distribution as ``nn.Dropout`` (p quantized to 1/65536), about 2x cheaper on a CPU (forward and
backward), where torch's per-element Bernoulli sampling of a large visual map (B x T x 49 x 512)
costs more than a matrix product over it. The random draws differ from ``nn.Dropout``'s: a seed
gives other masks. The relation layers use it by default (``dropout_impl="bit"``); ``"torch"`` keeps
``nn.Dropout``.

Axis legend: elementwise, any shape; the draw is flat (n elements, n/4 64-bit words).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch import Tensor

from .._checks import check_choice, check_dropout, check_flag, check_floating

DROPOUT_IMPLS: tuple[str, ...] = ("bit", "torch")  # the default first


def bit_dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` (to 1/65536) and scale the rest by ``1/(1-p)``.

    Each 64-bit word drawn from torch's generator gives four 16-bit uniform numbers, one per
    element; an element is kept when its number is at or above ``round(p * 65536)`` (counted
    from the bottom of the int16 range). Seeded by ``torch.manual_seed`` like ``F.dropout``.

    Shapes: x any shape, floating -> x's shape and dtype. An integer or bool ``x`` is refused (a
    ``TypeError``), as is a non-bool ``training``.
    """
    check_floating("x", x)
    p, training = check_dropout("p", p), check_flag("training", training)
    if not training or p == 0.0:
        return x
    # x times a 0 / 1/(1-p) mask in x's dtype, as F.dropout scales (same rounding in half precision);
    # the backward is then one product with the saved mask
    return x * bit_keep_mask(x.shape, p, x.dtype, x.device).mul_(1.0 / (1.0 - p))


def bit_uniform16(shape: torch.Size | tuple[int, ...], device: torch.device) -> Tensor:
    """Uniform int16 numbers of ``shape``, four per 64-bit word of torch's generator (``bit_dropout``'s draw)."""
    n = math.prod(shape)
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    return words.view(torch.int16)[:n].view(shape)


def bit_keep_mask(shape: torch.Size | tuple[int, ...], p: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """1 where a ``bit_uniform16`` draw keeps the element (probability ``1 - p``), else 0, in ``dtype``.
    The comparison writes ``dtype`` directly: no boolean mask and no second pass to convert it."""
    draw, threshold = bit_uniform16(shape, device), bit_threshold(p)
    if torch.compiler.is_compiling():  # inductor fuses the conversion itself
        return (draw >= threshold).to(dtype)
    return torch.ge(draw, threshold, out=torch.empty(shape, dtype=dtype, device=device))


def bit_threshold(p: float) -> int:
    """The int16 value below which ``bit_uniform16`` numbers fall with probability ``p`` (to 1/65536)."""
    return -32768 + round(p * 65536)


class BitDropout(nn.Module):
    """Drop-in for ``nn.Dropout(p)`` with a cheaper mask (see ``bit_dropout``). Any shape."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = check_dropout("p", p)

    def forward(self, x: Tensor) -> Tensor:
        """In training, zero each element with probability ``p`` and scale the rest by ``1/(1-p)``.

        Axes: any; elementwise.
        Shapes: x (...) floating -> (...), the same shape and dtype.
        """
        return bit_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def check_dropout_impl(impl: object) -> str:
    return check_choice("dropout_impl", impl, DROPOUT_IMPLS)


def make_dropout(p: float, impl: str = "bit") -> nn.Module:
    """``BitDropout(p)`` (``impl="bit"``) or ``nn.Dropout(p)`` (``"torch"``): the same distribution, other draws."""
    check_dropout_impl(impl)
    return nn.Dropout(p) if impl == "torch" else BitDropout(p)
