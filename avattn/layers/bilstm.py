"""BiLSTMEncoder: the bidirectional LSTM that AVEL (Tian et al., ECCV 2018) and PSP (Zhou et al.,
CVPR 2021) run over each modality's segment sequence.

Axis legend: b batch, t segments, c input features, h hidden size (per direction), l layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_flag, check_input_dtypes, check_positive_int, check_sequence_features


def _direction(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None, reverse: bool) -> Tensor:
    """One LSTM direction from zero (h, c), unrolled over time: (b, t, c) -> (b, t, h)."""
    hidden = w_hh.shape[1]
    gates_x = F.linear(x, w_ih, None if b_ih is None else b_ih + b_hh)  # (b, t, 4h), gate order i, f, g, o
    h = c = x.new_zeros(x.shape[0], hidden)
    out = []
    for t in reversed(range(x.shape[1])) if reverse else range(x.shape[1]):
        i, f, g, o = (gates_x[:, t] + F.linear(h, w_hh)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        out.append(h)
    return torch.stack(out[::-1] if reverse else out, dim=1)


class BiLSTMEncoder(nn.Module):
    """``nn.LSTM(input_dim, hidden_dim, num_layers, bias=bias, batch_first=True, bidirectional=True)``
    from a zero initial state, returning the whole output sequence ``[forward h_t ; backward h_t]``
    (final states are dropped). No dropout between layers.

    The parameters carry ``nn.LSTM``'s names, shapes and initialisation (``weight_ih_l0``,
    ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, the same with ``_reverse``; gate rows i, f, g, o),
    so an ``nn.LSTM`` state dict loads as is. Eager calls run the ATen LSTM op that ``nn.LSTM`` runs
    (oneDNN on CPU, cuDNN on CUDA, where the weights, not kept packed as ``nn.LSTM`` keeps them, are
    packed into one buffer on each call). Under ``torch.compile`` the recurrence is unrolled over T
    in plain tensor ops instead: Dynamo refuses ``nn.LSTM`` modules, and AOT autograd fails on the
    LSTM op when the input does not require grad (torch 2.13). Under fp16 autocast on CPU, where
    oneDNN has no fp16 LSTM, the eager op runs in float32 (and returns float32).

    Shapes: x (B, T, input_dim), T >= 1 -> (B, T, 2 * hidden_dim).
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int = 128,
        *,
        num_layers: int = 1,
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.input_dim = check_positive_int("input_dim", input_dim)
        self.hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.bias = check_flag("bias", bias)
        kw = {"device": device, "dtype": dtype}
        self._weight_names: list[str] = []
        for layer in range(self.num_layers):
            layer_in = self.input_dim if layer == 0 else 2 * self.hidden_dim
            for suffix in (f"l{layer}", f"l{layer}_reverse"):
                shapes = {"weight_ih": (4 * self.hidden_dim, layer_in), "weight_hh": (4 * self.hidden_dim, self.hidden_dim)}
                if bias:
                    shapes |= {"bias_ih": (4 * self.hidden_dim,), "bias_hh": (4 * self.hidden_dim,)}
                for kind, shape in shapes.items():
                    name = f"{kind}_{suffix}"
                    self.register_parameter(name, nn.Parameter(torch.empty(shape, **kw)))
                    self._weight_names.append(name)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.LSTM``'s initialisation: every weight and bias uniform in +-1/sqrt(hidden_dim)."""
        bound = 1.0 / math.sqrt(self.hidden_dim)
        for name in self._weight_names:
            nn.init.uniform_(getattr(self, name), -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        """Both directions' hidden states at every step, ``[forward h_t ; backward h_t]``.

        Axes: B batch, T segments (T >= 1), C input_dim, H hidden_dim (per direction).
        Shapes: x (B, T, C) -> (B, T, 2H).
        """
        check_sequence_features("x", x, self.input_dim, nonempty=True)
        check_input_dtypes(self, x=x)
        weights = [getattr(self, name) for name in self._weight_names]
        if torch.compiler.is_compiling():
            return self._unrolled(x, weights)
        if x.device.type == "cpu" and x.dtype != torch.float64 and torch.is_autocast_enabled("cpu") \
                and torch.get_autocast_dtype("cpu") == torch.float16:
            # oneDNN has no fp16 LSTM on CPU ("could not create a primitive descriptor"): run this one in fp32
            with torch.autocast("cpu", enabled=False):
                return self._lstm(x.float(), [w.float() for w in weights])
        return self._lstm(x, weights)

    def _lstm(self, x: Tensor, weights: list[Tensor]) -> Tensor:
        h0 = x.new_zeros(2 * self.num_layers, x.shape[0], self.hidden_dim)
        out, _, _ = torch.lstm(x, (h0, h0), weights, self.bias, self.num_layers, 0.0, self.training, True, True)
        return out

    def _unrolled(self, x: Tensor, weights: list[Tensor]) -> Tensor:
        per_direction = 4 if self.bias else 2
        for layer in range(self.num_layers):
            outs = []
            for reverse in (False, True):
                start = (2 * layer + reverse) * per_direction
                w_ih, w_hh, *biases = weights[start : start + per_direction]
                outs.append(_direction(x, w_ih, w_hh, *(biases or (None, None)), reverse=reverse))
            x = torch.cat(outs, dim=-1)
        return x

    def extra_repr(self) -> str:
        return f"{self.input_dim}, {self.hidden_dim}, num_layers={self.num_layers}, bias={self.bias}"
