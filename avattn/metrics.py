"""Segment predictions and accuracy (the 0.5 rule; background = 28).

Axis legend: b batch, t segments, k classes.

Predictions are per-segment maps: B = 0 gives a (0, T) result. ``segment_accuracy`` is a mean, and
a mean over no segment has no value: empty predictions are a ``ValueError`` (not NaN).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import (
    check_float_tensor,
    check_integer_tensor,
    check_label_range,
    check_nonempty,
    check_nonnegative_int,
)
from .losses import BACKGROUND


def predict_segments(event_logits: Tensor, class_logits: Tensor, *, background: int = BACKGROUND) -> Tensor:
    """Segment t is an event if ``sigmoid(s_t) > 0.5``, labelled ``argmax class_logits``; else background.

    Shapes: event_logits (B, T); class_logits (B, K) -> (B, T) int64 labels. With a weak head's
    29-way ``class_logits`` the argmax may itself be background.
    """
    check_float_tensor("event_logits", event_logits, 2, "(B, T)")
    check_float_tensor("class_logits", class_logits, 2, "(B, K)")
    if class_logits.shape[0] != event_logits.shape[0]:
        raise ValueError(
            f"class_logits must have batch size {event_logits.shape[0]} like event_logits, got {tuple(class_logits.shape)}"
        )
    if class_logits.shape[1] == 0:
        raise ValueError(f"class_logits must have at least one class (B, K >= 1), got {tuple(class_logits.shape)}")
    background = check_nonnegative_int("background", background)
    category = class_logits.argmax(dim=-1, keepdim=True).expand_as(event_logits)
    return torch.where(event_logits > 0, category, torch.full_like(category, background))


def segment_accuracy(predictions: Tensor, segment_labels: Tensor, *, background: int = BACKGROUND) -> Tensor:
    """Fraction of segments whose predicted label equals the true one.

    Shapes: predictions (B, T), segment_labels (B, T), integer tensors -> () float32. At least one
    segment (B, T >= 1): an empty pair is a ``ValueError``, since the accuracy of nothing has no value.
    ``segment_labels`` must be event classes ``0..background-1`` or ``background`` (checked as in
    ``avattn.losses``: eagerly on CPU, ``torch._assert_async`` elsewhere).
    """
    check_integer_tensor("predictions", predictions, "(B, T)")
    check_integer_tensor("segment_labels", segment_labels, "(B, T)")
    if predictions.shape != segment_labels.shape:
        raise ValueError(
            f"predictions and segment_labels must have the same shape (B, T), got {tuple(predictions.shape)} and {tuple(segment_labels.shape)}"
        )
    check_nonempty("predictions", predictions, "(B, T)")
    background = check_nonnegative_int("background", background)
    check_label_range("segment_labels", segment_labels, background, background=background)
    return (predictions == segment_labels).float().mean()


def predict_segment_classes(segment_scores: Tensor) -> Tensor:
    """Each segment's label is the argmax of its K scores, background (28) included: the rule of AVEL
    and PSP (no 0.5 relevance rule). Logits, probabilities and positively rescaled scores give the
    same labels.

    Shapes: segment_scores (B, T, K) -> (B, T) int64 labels.
    """
    check_float_tensor("segment_scores", segment_scores, 3, "(B, T, K)")
    if segment_scores.shape[-1] == 0:
        raise ValueError(f"segment_scores must have at least one class, got shape {tuple(segment_scores.shape)}")
    return segment_scores.argmax(dim=-1)
