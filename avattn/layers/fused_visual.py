"""The visual path of CMRAN in few passes: Linear + ReLU + BitDropout, then AGSCA, with a hand-written backward.

Computes exactly what ``AGSCA(bit_dropout(relu(proj(visual))), audio)`` computes (same dropout
mask from the same random draw), with fewer passes over the (B, T, N, C) visual map and its
gradient, which on a CPU cost about as much as the matrix products over it:

* the dropout scale ``1/(1-p)`` is folded into the pre-projection's product (``relu(s y) = s relu(y)``
  for ``s > 0``); ReLU and the mask are applied in place; the backward reads one tensor, the
  projected map ``d``, for both masks (``d > 0`` iff kept and positive);
* the spatial score ``w . (ReLU(U_v g_n) * ReLU(U_a a))`` is ``ReLU(U_v g_n) . (w * ReLU(U_a a))``: a
  batched matrix-vector product, no (B, T, N, 256) product map;
* every map is saved once and reused, gradients are accumulated into the products
  (``addmm`` with ``beta=1``) and masked with ``threshold_backward`` (one pass, no boolean mask).

Axis legend: b batch, t segments, n cells, c channels (``m = b*t*n`` rows), k the spatial hidden size.
The small per-segment part (gates from the cell mean and the audio, the audio side of the score)
stays in plain autograd. Under autocast the map's products run in the autocast dtype, like the
plain layers'; the softmax over cells is computed in float32 (returned in the autocast dtype).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
from torch import Tensor

from .._checks import (
    autocast_enabled,
    check_dropout,
    check_flag,
    check_input_dtypes,
    check_same_batch_time,
    check_sequence_features,
    check_visual_map,
)
from .agsca import AGSCA
from .dropout import bit_keep_mask

_threshold_backward = torch.ops.aten.threshold_backward.default
_MKLDNN_LINEAR = getattr(torch.ops.mkldnn, "_linear_pointwise", None) if torch.backends.mkldnn.is_available() else None
# oneDNN runs bf16 products only where the CPU has bf16 instructions it may use (ONEDNN_MAX_CPU_ISA honoured)
_MKLDNN_BF16 = _MKLDNN_LINEAR is not None and bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())


def _softmax_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half types (as autocast runs softmax), else the dtype itself."""
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def _linear_relu(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """relu(x W^T + b): on a CPU, one oneDNN product with the ReLU in its epilogue (no bias copy, no extra pass).
    Not under torch.compile: inductor lowers that op only for frozen weights, and fuses the ReLU itself."""
    if x.device.type == "cpu" and _MKLDNN_LINEAR is not None and not torch.compiler.is_compiling() and (
        x.dtype == torch.float32 or (x.dtype == torch.bfloat16 and _MKLDNN_BF16)
    ):
        return _MKLDNN_LINEAR(x, weight, bias, "relu", [], "")
    return torch.addmm(bias, x, weight.t()).relu_()


def _cell_sum(x: Tensor, scale: float = 1.0) -> Tensor:
    """x (bt, n, c) -> scale * sum over n (bt, c), as a batched product with a constant vector: one read of x,
    faster on a CPU than a strided reduction (much faster in bf16), and as accurate (n terms per sum).
    Not under torch.compile, whose own reduction code is faster than what it makes of that product."""
    if torch.compiler.is_compiling():
        return x.sum(dim=1) * scale if scale != 1.0 else x.sum(dim=1)
    ones = torch.full((x.shape[0], 1, x.shape[1]), scale, dtype=x.dtype, device=x.device)
    return torch.bmm(ones, x).squeeze(1)


def _column_sum(x: Tensor, cells: int) -> Tensor:
    """x (bt*n, c) -> (c,): per-segment sums by ``_cell_sum``, then a pairwise sum over the segments."""
    return _cell_sum(x.view(-1, cells, x.shape[-1])).sum(0)


class _ProjectedChannelMean(torch.autograd.Function):
    """x (m, c_in) -> d = dropout(relu(x W0^T + b0)) (m, c), mean_n relu(d Wc^T + bc) (b*t, c).
    ``keep``: the dropout mask (None: no dropout); ``scale`` = 1/(1-p), folded into W0 and b0."""

    @staticmethod
    def forward(ctx, x, w0, b0, wc, bc, keep, scale: float, cells: int):
        d = _linear_relu(x, w0 * scale, b0 * scale) if scale != 1.0 else _linear_relu(x, w0, b0)
        if keep is not None:
            d.mul_(keep)
        c = _linear_relu(d, wc, bc)
        mean = _cell_sum(c.view(-1, cells, c.shape[-1]), 1.0 / cells)
        ctx.save_for_backward(x, w0, wc, d, c)
        ctx.scale, ctx.cells = scale, cells
        return d, mean

    @staticmethod
    def backward(ctx, grad_d, grad_mean):
        x, w0, wc, d, c = ctx.saved_tensors
        scale, cells = ctx.scale, ctx.cells
        grad_wc = grad_bc = None
        if grad_mean is not None:
            per_cell = (grad_mean / cells).unsqueeze(1)  # (bt, 1, c): the mean's gradient, broadcast over cells
            grad_c = _threshold_backward(per_cell, c.view(-1, cells, c.shape[-1]), 0).view(c.shape)
            grad_wc = grad_c.t() @ d
            grad_bc = _column_sum(grad_c, cells)
            # grad_d comes from _GatedSpatialPool's backward alone: accumulating into it in place is safe
            grad_d = torch.mm(grad_c, wc) if grad_d is None else grad_d.addmm_(grad_c, wc)
        grad_x = grad_w0 = grad_b0 = None
        if grad_d is not None:
            grad_y = _threshold_backward(grad_d, d, 0)  # ReLU and dropout masks at once
            grad_w0 = (grad_y.t() @ x).mul_(scale)
            grad_b0 = _column_sum(grad_y, cells).mul_(scale)
            if ctx.needs_input_grad[0]:
                grad_x = (grad_y @ w0).mul_(scale)
        return grad_x, grad_w0, grad_b0, grad_wc, grad_bc, None, None, None


class _GatedSpatialPool(torch.autograd.Function):
    """d (b*t, n, c), s (b*t, c), Ws (k, c), bs (k,), u (b*t, k), bw (1,) ->
    out = sum_n alpha_n g_n (b*t, c) and alpha (b*t, n) (the softmax in float32 for half types), where g = d * s,
    alpha = softmax_n tanh(ReLU(g_n Ws^T + bs) . u + bw).
    ``inference``: no backward follows, so g overwrites d (which the caller no longer needs)."""

    @staticmethod
    def forward(ctx, d, s, ws, bs, u, bw, inference: bool):
        bt, n, c = d.shape
        g = d.mul_(s.unsqueeze(1)) if inference else d * s.unsqueeze(1)  # inference: d is not needed after this
        h = _linear_relu(g.view(-1, c), ws, bs).view(bt, n, -1)
        tanh = (torch.bmm(h, u.unsqueeze(2)).squeeze(2) + bw).tanh_()
        alpha = tanh.to(_softmax_dtype(tanh.dtype)).softmax(dim=-1)
        alpha_out = alpha.to(g.dtype)
        out = torch.bmm(alpha_out.unsqueeze(1), g).squeeze(1)
        ctx.save_for_backward(d, s, g, ws, h, u, tanh, alpha)
        return out, alpha_out

    @staticmethod
    def backward(ctx, grad_out, grad_alpha):
        d, s, g, ws, h, u, tanh, alpha = ctx.saved_tensors
        bt, n, c = d.shape
        grad_score = torch.zeros_like(alpha) if grad_alpha is None else grad_alpha.to(alpha.dtype)
        if grad_out is not None:
            grad_score = grad_score + torch.bmm(g, grad_out.unsqueeze(2)).squeeze(2).to(alpha.dtype)
        grad_x = alpha * (grad_score - (alpha * grad_score).sum(-1, keepdim=True))  # softmax backward
        grad_pre = (grad_x * (1 - tanh.to(alpha.dtype).square())).to(h.dtype)  # (bt, n)
        grad_bw = grad_pre.sum().reshape(1)
        grad_u = torch.bmm(grad_pre.unsqueeze(1), h).squeeze(1)  # sum_n grad_pre_n h_n
        grad_h = _threshold_backward(torch.bmm(grad_pre.unsqueeze(2), u.unsqueeze(1)), h, 0).view(bt * n, -1)
        grad_ws = grad_h.t() @ g.view(-1, c)
        grad_bs = _column_sum(grad_h, n)
        if grad_out is None:
            grad_g = torch.mm(grad_h, ws).view(bt, n, c)
        else:
            grad_g = torch.bmm(alpha.to(g.dtype).unsqueeze(2), grad_out.unsqueeze(1))  # alpha_n grad_out
            grad_g.view(-1, c).addmm_(grad_h, ws)
        grad_s = torch.linalg.vecdot(grad_g, d, dim=1)
        grad_d = grad_g.mul_(s.unsqueeze(1))
        return grad_d, grad_s, grad_ws, grad_bs, grad_u, grad_bw, None


def _autocast_off(device_type: str):
    """Autocast disabled for ``device_type``; nothing to disable where autocast does not exist (meta)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _check_fused_arguments(visual, audio, proj, agsca, dropout, training) -> float:
    if not isinstance(proj, nn.Linear) or proj.bias is None:
        raise TypeError(f"proj must be an nn.Linear with a bias, got {type(proj).__name__}"
                        + ("" if not isinstance(proj, nn.Linear) else " without a bias"))
    if not isinstance(agsca, AGSCA):
        raise TypeError(f"agsca must be an avattn.AGSCA, got {type(agsca).__name__}")
    dropout = check_dropout("dropout", dropout)
    check_flag("training", training)
    check_visual_map("visual", visual, proj.in_features)
    check_sequence_features("audio", audio, agsca.channel.audio_dim)
    check_same_batch_time("audio", audio, "visual", visual)
    if proj.out_features != agsca.channel.visual_dim:
        raise ValueError(f"proj.out_features ({proj.out_features}) must equal AGSCA's visual_dim "
                         f"({agsca.channel.visual_dim})")
    check_input_dtypes(proj, visual=visual, audio=audio)
    return dropout


def fused_projected_agsca(
    visual: Tensor, audio: Tensor, proj: nn.Linear, agsca: AGSCA, *, dropout: float, training: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """``AGSCA(bit_dropout(relu(proj(visual)), dropout, training), audio, return_weights=True)``, fused.

    The visual path of CMRAN (pre-projection + ReLU + ``BitDropout``, then ``AGSCA``) with the same
    outputs, gradients and dropout draws as those layers called one after the other, in fewer passes
    over the (B, T, N, C) map (see the module docstring). A model keeps ``proj`` (an ``nn.Linear``
    with bias) and ``agsca`` as its own submodules and calls this in ``forward`` instead of them.

    Axes: B batch, T segments, H x W (or N) spatial cells, C_in = ``proj.in_features``,
    C = ``proj.out_features`` (= AGSCA's visual_dim), A audio_dim.
    Shapes: visual (B, T, H, W, C_in) or (B, T, N, C_in); audio (B, T, A) -> out (B, T, C),
    spatial weights (B, T, H, W) or (B, T, N), channel gates (B, T, C).
    ``dropout`` in [0, 1) acts only when ``training`` (True or False) is True.
    """
    dropout = _check_fused_arguments(visual, audio, proj, agsca, dropout, training)
    device_type = visual.device.type
    autocast = autocast_enabled(device_type)
    b, t = visual.shape[:2]
    cells = visual.shape[2:-1].numel()
    x = visual.reshape(b * t * cells, visual.shape[-1])
    p = dropout if training else 0.0
    dtype = torch.get_autocast_dtype(device_type) if autocast else x.dtype
    keep = bit_keep_mask((x.shape[0], proj.out_features), p, dtype, x.device) if p > 0 else None
    ch, sp = agsca.channel, agsca.spatial
    with _autocast_off(device_type):
        d, mean = _ProjectedChannelMean.apply(
            x.to(dtype), proj.weight.to(dtype), proj.bias.to(dtype), ch.visual_proj.weight.to(dtype),
            ch.visual_proj.bias.to(dtype), keep, 1.0 / (1.0 - p), cells,
        )
    audio_c = torch.relu(ch.audio_proj(audio)).reshape(b * t, -1)
    gates = torch.sigmoid(ch.excite(torch.relu(ch.squeeze(audio_c * mean))))  # (bt, c)
    u = sp.score.weight[0] * torch.relu(sp.audio_proj(audio)).reshape(b * t, -1)  # (bt, k)
    with _autocast_off(device_type):
        pool_inputs = (d.view(b * t, cells, -1), (gates + 1).to(dtype), sp.visual_proj.weight.to(dtype),
                       sp.visual_proj.bias.to(dtype), u.to(dtype), sp.score.bias.to(dtype))
        # without a backward to come, the gating overwrites d (internal to this function) instead of a new map
        inference = not (torch.is_grad_enabled() and any(tensor.requires_grad for tensor in pool_inputs))
        out, alpha = _GatedSpatialPool.apply(*pool_inputs, inference)
    return out.view(b, t, -1), alpha.view(visual.shape[:-1]), gates.view(b, t, -1)
