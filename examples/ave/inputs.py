"""The task's model inputs, checked once for every model: visual (B, T, H, W, C) or (B, T, N, C) and audio
(B, T, 128) float tensors sharing B and T.

Axis legend: b batch, t segments, h/w grid, n cells, c visual channels, a audio channels (128).
"""

from __future__ import annotations

from torch import Tensor

from .constants import AUDIO_DIM


def check_av_inputs(visual: object, audio: object, visual_dim: int) -> None:
    """ValueError naming the input, what it got and what it expects."""
    expect_v = f"(B, T, H, W, {visual_dim}) or (B, T, N, {visual_dim})"
    if not isinstance(visual, Tensor) or not visual.is_floating_point() or visual.dim() not in (4, 5) \
            or visual.shape[-1] != visual_dim:
        got = tuple(visual.shape) if isinstance(visual, Tensor) else type(visual).__name__
        raise ValueError(f"visual must be a float tensor {expect_v}, got {got}")
    if not isinstance(audio, Tensor) or not audio.is_floating_point() or audio.dim() != 3 \
            or audio.shape[-1] != AUDIO_DIM or audio.shape[:2] != visual.shape[:2]:
        got = tuple(audio.shape) if isinstance(audio, Tensor) else type(audio).__name__
        raise ValueError(f"audio must be a float tensor (B, T, {AUDIO_DIM}) with the B, T of visual "
                         f"{tuple(visual.shape[:2])}, got {got}")


__all__ = ["check_av_inputs"]
