"""Frames to VGG-19 inputs: the release's Keras/Caffe preprocessing, or torchvision's for its weights.

Axis legend: B frames, H, W source pixels, c colour channels (RGB in, BGR for Keras), S = 224 output side.

"keras" (the AVE release): ``cv2.resize(frame, (224, 224))`` (a squash, bilinear with half-pixel centres,
no anti-aliasing, edges clamped, rounded back to uint8), then Keras ``preprocess_input`` in caffe mode: RGB -> BGR,
minus the ImageNet means (103.939, 116.779, 123.68), no scaling. OpenCV computes the bilinear weights in
11-bit fixed point; this computes them in float64 and rounds half up, which can differ by one grey level.
"torchvision" (``vgg19-dcbb9e9d.pth``'s preset): shorter side to 256 (bilinear, anti-aliased, rounded to
uint8), centre crop 224, /255, minus mean (0.485, 0.456, 0.406), over std (0.229, 0.224, 0.225).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SIZE = 224
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
TORCHVISION_RESIZE = 256
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)


def linear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output pixel: its two source pixels and the second one's weight (cv2 INTER_LINEAR: centre
    (d + 0.5) * n_in / n_out - 0.5, clamped to the first and last pixel)."""
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    low = np.clip(np.floor(src), 0, n_in - 1).astype(np.int64)
    weight = np.where((src <= 0) | (src >= n_in - 1), 0.0, src - low)
    return low, np.minimum(low + 1, n_in - 1), weight


def squash_resize(frame: np.ndarray, size: int = SIZE) -> torch.Tensor:
    """(H, W, c) uint8 -> (size, size, c) uint8 tensor: cv2.resize(frame, (size, size)), INTER_LINEAR."""
    rows0, rows1, wy = linear_taps(frame.shape[0], size)
    cols0, cols1, wx = linear_taps(frame.shape[1], size)
    x = frame.astype(np.float64)
    rows = x[rows0] * (1 - wy)[:, None, None] + x[rows1] * wy[:, None, None]  # (size, W, c)
    out = rows[:, cols0] * (1 - wx)[None, :, None] + rows[:, cols1] * wx[None, :, None]
    return torch.from_numpy(np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8))


def torchvision_crop(frame: np.ndarray) -> torch.Tensor:
    """(H, W, c) uint8 -> (224, 224, c) uint8 tensor: resize the shorter side to 256, centre crop 224."""
    h, w = frame.shape[:2]
    short, long = (h, w) if h <= w else (w, h)
    new_long = int(TORCHVISION_RESIZE * long / short)
    size = (TORCHVISION_RESIZE, new_long) if h <= w else (new_long, TORCHVISION_RESIZE)
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].to(torch.float32)
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    y = torch.round(y).clamp_(0, 255).to(torch.uint8)
    top, left = int(round((size[0] - SIZE) / 2.0)), int(round((size[1] - SIZE) / 2.0))
    return y[:, top:top + SIZE, left:left + SIZE].permute(1, 2, 0)


def caffe_input(frames: torch.Tensor) -> torch.Tensor:
    """(B, S, S, 3) uint8 RGB -> (B, 3, S, S) float32 BGR minus the BGR means."""
    bgr = frames.flip(-1).to(torch.float32)
    return (bgr - bgr.new_tensor(CAFFE_BGR_MEAN)).permute(0, 3, 1, 2).contiguous()


def torchvision_input(frames: torch.Tensor) -> torch.Tensor:
    """(B, S, S, 3) uint8 RGB -> (B, 3, S, S) float32 normalised."""
    x = frames.to(torch.float32) / 255.0
    x = (x - x.new_tensor(TORCHVISION_MEAN)) / x.new_tensor(TORCHVISION_STD)
    return x.permute(0, 3, 1, 2).contiguous()


PREPROCESS = {"keras": (squash_resize, caffe_input), "torchvision": (torchvision_crop, torchvision_input)}
