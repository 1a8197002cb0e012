"""Losses of the localization heads.

Axis legend: b batch, t segments, k classes.

Label values are checked where they enter: eagerly on CPU (the error names the label, the bad
value, where it is and the valid range); on other devices, and under ``torch.compile``, with
``torch._assert_async``, which fails the run without a host sync on the hot path (on CUDA as a
device-side assert that carries no value, so check labels on the CPU when loading them).
``check_label_range`` (public as ``avattn.check_label_range``) is that check, for a model's own losses.

Empty batches: every loss here is a mean, and a mean over nothing has no value (torch would return
NaN and poison a running average), so an argument with an empty axis (B = 0, T = 0 or K = 0) is a
``ValueError`` naming it. ``avps_target`` is a per-row map: B = 0 gives a (0, T) target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import (
    check_float_dtype,
    check_float_tensor,
    check_label_range,
    check_labels,
    check_nonempty,
    check_nonnegative_int,
    check_positive,
)

__all__ = [
    "BACKGROUND",
    "avps_loss",
    "avps_target",
    "check_label_range",
    "segment_cross_entropy",
    "segment_soft_margin_loss",
    "soft_target_bce_loss",
    "supervised_localization_loss",
    "weak_localization_loss",
]

BACKGROUND = 28


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
    check_nonempty("event_logits", check_float_tensor("event_logits", event_logits, 2, "(B, T)"), "(B, T)")
    check_nonempty("class_logits", check_float_tensor("class_logits", class_logits, 2, "(B, K)"), "(B, K)")
    if class_logits.shape[0] != event_logits.shape[0]:
        raise ValueError(
            f"class_logits must have batch size {event_logits.shape[0]} like event_logits, got {tuple(class_logits.shape)}"
        )
    background = check_nonnegative_int("background", background)
    segment_labels = check_labels("segment_labels", segment_labels, tuple(event_logits.shape), "(B, T)")
    video_labels = check_labels("video_labels", video_labels, (event_logits.shape[0],), "(B,)")
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
    check_nonempty("video_scores", check_float_tensor("video_scores", video_scores, 2, "(B, K+1)"), "(B, K+1)")
    video_labels = check_labels("video_labels", video_labels, (video_scores.shape[0],), "(B,)")
    if num_classes is not None and num_classes != video_scores.shape[1]:
        raise ValueError(
            f"num_classes must equal the class axis of video_scores {tuple(video_scores.shape)}, got {num_classes!r}"
        )
    num_classes = video_scores.shape[1]
    check_label_range("video_labels", video_labels, num_classes)
    target = F.one_hot(video_labels, num_classes).to(video_scores.dtype)
    return F.multilabel_soft_margin_loss(video_scores, target)


def _check_segment_scores(name: str, scores: object, segment_labels: object) -> tuple[Tensor, Tensor]:
    check_nonempty(name, check_float_tensor(name, scores, 3, "(B, T, K)"), "(B, T, K)")
    labels = check_labels("segment_labels", segment_labels, tuple(scores.shape[:2]), "(B, T)")
    check_label_range("segment_labels", labels, scores.shape[-1])
    return scores, labels


def segment_cross_entropy(segment_logits: Tensor, segment_labels: Tensor) -> Tensor:
    """Cross-entropy of each segment's K-way logits (background an ordinary class), mean over B*T:
    the classification loss of supervised PSP.

    Shapes: segment_logits (B, T, K); segment_labels (B, T) ints in [0, K) -> ().
    """
    segment_logits, labels = _check_segment_scores("segment_logits", segment_logits, segment_labels)
    return F.cross_entropy(segment_logits.flatten(0, 1), labels.flatten())


def segment_soft_margin_loss(segment_scores: Tensor, segment_labels: Tensor) -> Tensor:
    """``MultiLabelSoftMarginLoss(segment_scores, one_hot(segment_labels))``: the mean over all B*T*K
    entries of ``BCE(sigmoid(score), target)``. Supervised AVEL applies it to the softmax output
    (``segment_logits.softmax(-1)``), a sigmoid on top of a softmax; pass logits to apply it to logits.

    Shapes: segment_scores (B, T, K); segment_labels (B, T) ints in [0, K) -> ().
    """
    segment_scores, labels = _check_segment_scores("segment_scores", segment_scores, segment_labels)
    target = F.one_hot(labels, segment_scores.shape[-1]).to(segment_scores.dtype)
    return F.multilabel_soft_margin_loss(segment_scores, target)


def avps_target(segment_labels: Tensor, *, background: int = BACKGROUND, dtype: torch.dtype | None = None) -> Tensor:
    """The target of PSP's audio-visual pair similarity loss: ``1/k`` on the k segments of the
    video's event class, 0 elsewhere; a video with no event segment gets ``1/T`` everywhere.

    The video's class is its smallest non-background segment label (AVE videos have one event
    class). Each row sums to 1. Shapes: segment_labels (B, T >= 1) ints in [0, background] -> (B, T)
    floats (``dtype``: a floating dtype, default torch's default dtype); B = 0 gives a (0, T) target.
    """
    if isinstance(segment_labels, Tensor) and segment_labels.dim() != 2:
        raise ValueError(f"segment_labels must have shape (B, T), got {tuple(segment_labels.shape)}")
    labels = check_labels("segment_labels", segment_labels, tuple(getattr(segment_labels, "shape", ())), "(B, T)")
    if labels.shape[1] == 0:
        raise ValueError(f"segment_labels must have at least one segment (B, T >= 1), got {tuple(labels.shape)}")
    background = check_nonnegative_int("background", background)
    dtype = torch.get_default_dtype() if dtype is None else check_float_dtype("dtype", dtype)
    check_label_range("segment_labels", labels, background, background=background)
    is_event = labels != background
    video_class = torch.where(is_event, labels, torch.iinfo(labels.dtype).max).amin(dim=1, keepdim=True)
    video_class = torch.where(is_event.any(dim=1, keepdim=True), video_class, background)
    chosen = (labels == video_class).to(dtype)
    return chosen / chosen.sum(dim=1, keepdim=True)


def avps_loss(visual: Tensor, audio: Tensor, target: Tensor, *, eps: float = 1e-8) -> Tensor:
    """PSP's audio-visual pair similarity loss (AVPSL, Zhou et al., CVPR 2021, Eq. 8-9).

    ``c_t = cos(v_t, a_t)`` (each vector L2-normalised with ``F.normalize``), ``p_t = ReLU(c_t) /
    (sum_t ReLU(c_t) + eps)``, loss ``mean_{b,t} (p_t - target_t)^2``. ``target`` is usually
    ``avps_target(segment_labels)``. PSP adds it to the cross-entropy with weight 100.

    Shapes: visual (B, T, E), audio (B, T, E) (PSP's normalised streams); target (B, T) -> ().
    """
    check_nonempty("visual", check_float_tensor("visual", visual, 3, "(B, T, E)"), "(B, T, E)")
    check_float_tensor("audio", audio, 3, "(B, T, E)")
    check_float_tensor("target", target, 2, "(B, T)")
    eps = check_positive("eps", eps)
    if audio.shape != visual.shape:
        raise ValueError(f"audio must have the shape of visual {tuple(visual.shape)}, got {tuple(audio.shape)}")
    if target.shape != visual.shape[:2]:
        raise ValueError(f"target must have shape (B, T) = {tuple(visual.shape[:2])}, got {tuple(target.shape)}")
    cosine = (F.normalize(visual, dim=-1) * F.normalize(audio, dim=-1)).sum(dim=-1)
    positive = torch.relu(cosine)
    p = positive / (positive.sum(dim=-1, keepdim=True) + eps)
    return F.mse_loss(p, target.to(p.dtype))


def soft_target_bce_loss(video_probs: Tensor, target: Tensor) -> Tensor:
    """``BCELoss(video_probs, target)``, mean over B*K: weakly supervised PSP's loss, on the softmax
    output (``WeightedSegmentOutput.video_probs``) against soft targets in [0, 1] (a one-hot row for
    plain video labels).

    Shapes: video_probs (B, K) in [0, 1]; target (B, K) in [0, 1] -> ().
    """
    check_nonempty("video_probs", check_float_tensor("video_probs", video_probs, 2, "(B, K)"), "(B, K)")
    check_float_tensor("target", target, 2, "(B, K)")
    if target.shape != video_probs.shape:
        raise ValueError(f"target must have the shape of video_probs {tuple(video_probs.shape)}, got {tuple(target.shape)}")
    return F.binary_cross_entropy(video_probs, target.to(video_probs.dtype))
