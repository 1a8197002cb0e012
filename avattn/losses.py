"""Losses of the localization heads.

Axis legend: b batch, t segments, k classes.

Label values are checked where they enter: eagerly on CPU (the error names the label, the bad
value, where it is and the valid range); on other devices, and under ``torch.compile``, with
``torch._assert_async``, which fails the run without a host sync on the hot path (on CUDA as a
device-side assert that carries no value, so check labels on the CPU when loading them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .functional._validate import check_float_tensor

BACKGROUND = 28


def _check_labels(name: str, labels: object, shape: tuple[int, ...], layout: str) -> Tensor:
    if not isinstance(labels, Tensor) or labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        got = labels.dtype if isinstance(labels, Tensor) else type(labels).__name__
        raise TypeError(f"{name} must be an integer tensor {layout}, got {got}")
    if tuple(labels.shape) != shape:
        raise ValueError(f"{name} must have shape {layout} = {shape}, got {tuple(labels.shape)}")
    return labels.long()


def check_label_range(name: str, labels: Tensor, num_classes: int, *, background: int | None = None) -> None:
    """Every label in ``0..num_classes-1``, or equal to ``background`` when one is given."""
    valid = f"0..{num_classes - 1}" + ("" if background is None else f" or the background label {background}")
    bad = (labels < 0) | (labels >= num_classes)
    if background is not None:
        bad = bad & (labels != background)
    if labels.device.type != "cpu" or torch.compiler.is_compiling():
        torch._assert_async(~bad.any(), f"{name} must be in {valid}")
        return
    if bad.any():
        where = tuple(bad.nonzero()[0].tolist())
        raise ValueError(f"{name} must be in {valid}, got {labels[where].item()} at index {where}")


def supervised_localization_loss(
    event_logits: Tensor,
    class_logits: Tensor,
    segment_labels: Tensor,
    video_labels: Tensor,
    *,
    background: int = BACKGROUND,
) -> Tensor:
    """``BCEWithLogits(s, is_event) + CrossEntropy(class_logits, video class)``, 1:1.

    Shapes: event_logits (B, T); class_logits (B, K); segment_labels (B, T) ints in [0, K) or
    ``background`` for background; video_labels (B,) ints in [0, K).
    """
    check_float_tensor("event_logits", event_logits, 2, "(B, T)")
    check_float_tensor("class_logits", class_logits, 2, "(B, K)")
    if class_logits.shape[0] != event_logits.shape[0]:
        raise ValueError(
            f"class_logits must have batch size {event_logits.shape[0]} like event_logits, got {tuple(class_logits.shape)}"
        )
    segment_labels = _check_labels("segment_labels", segment_labels, tuple(event_logits.shape), "(B, T)")
    video_labels = _check_labels("video_labels", video_labels, (event_logits.shape[0],), "(B,)")
    num_classes = class_logits.shape[1]
    check_label_range("segment_labels", segment_labels, num_classes, background=background)
    check_label_range("video_labels", video_labels, num_classes)
    is_event = (segment_labels != background).to(event_logits.dtype)
    return F.binary_cross_entropy_with_logits(event_logits, is_event) + F.cross_entropy(class_logits, video_labels)


def weak_localization_loss(
    video_scores: Tensor,
    video_labels: Tensor,
    *,
    num_classes: int | None = None,
) -> Tensor:
    """``MultiLabelSoftMarginLoss(video_scores, one_hot(video_labels))``.

    AVEL and the CMRAN reference apply it to the softmax output (``WeakOutput.video_scores``);
    pass ``WeakOutput.video_logits`` instead to apply it to logits.
    Shapes: video_scores (B, K+1); video_labels (B,) ints in [0, K+1). ``num_classes``, if
    given, must equal K+1.
    """
    check_float_tensor("video_scores", video_scores, 2, "(B, K+1)")
    video_labels = _check_labels("video_labels", video_labels, (video_scores.shape[0],), "(B,)")
    if num_classes is not None and num_classes != video_scores.shape[1]:
        raise ValueError(
            f"num_classes must equal the class axis of video_scores {tuple(video_scores.shape)}, got {num_classes!r}"
        )
    num_classes = video_scores.shape[1]
    check_label_range("video_labels", video_labels, num_classes)
    target = F.one_hot(video_labels, num_classes).to(video_scores.dtype)
    return F.multilabel_soft_margin_loss(video_scores, target)
