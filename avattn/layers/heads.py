"""Localization heads: supervised (segment relevance + category) and weak (MIL).

Axis legend: b batch, t segments, e model dim, k classes.

``num_classes`` is, here as in every avattn layer, the width of the class axis the layer outputs.
The supervised head scores the 28 AVE events (the relevance logit decides background), so its
default is 28; the weak head scores the events and background, 29.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
from torch import Tensor

from .._checks import check_input_dtypes, check_positive_int, check_sequence_features


class SupervisedOutput(NamedTuple):
    """event_logits (B, T): a logit per segment; class_logits (B, K) over event categories."""

    event_logits: Tensor
    class_logits: Tensor


class WeakOutput(NamedTuple):
    """event_logits (B, T); class_logits z (B, K+1), background included;
    video_logits (B, K+1) = max_t sigmoid(s_t) * z; video_scores (B, K+1) = softmax(video_logits)."""

    event_logits: Tensor
    class_logits: Tensor
    video_logits: Tensor
    video_scores: Tensor


class SupervisedLocalizationHead(nn.Module):
    """``s_t = Linear(E, 1)(O_t)``; categories ``Linear(E, K)(max_t O)``.

    ``num_classes`` = K, the event classes (28 in AVE): background is not a class here, a segment
    is background when ``s_t <= 0`` (``avattn.predict_segments``).

    Shapes: (B, T, E) -> ``SupervisedOutput`` ((B, T), (B, K)).
    """

    def __init__(self, dim: int = 256, num_classes: int = 28, *, device=None, dtype=None) -> None:
        super().__init__()
        dim, num_classes = check_positive_int("dim", dim), check_positive_int("num_classes", num_classes)
        self.dim = dim
        self.relevance = nn.Linear(dim, 1, device=device, dtype=dtype)
        self.classifier = nn.Linear(dim, num_classes, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> SupervisedOutput:
        """A relevance logit per segment and one set of category logits per video.

        Axes: B batch, T segments (T >= 1), E dim, K num_classes (events only).
        Shapes: x (B, T, E) -> ``SupervisedOutput(event_logits (B, T), class_logits (B, K))``.
        """
        check_input_dtypes(self, x=x)
        check_sequence_features("x", x, self.dim, nonempty=True)
        return SupervisedOutput(self.relevance(x).squeeze(-1), self.classifier(x.amax(dim=1)))


class WeakLocalizationHead(nn.Module):
    """MIL head: ``s_t = Linear(E, 1)``, ``z = Linear(E, K+1)(max_t O)``,
    video scores ``softmax(max_t sigmoid(s_t) * z)``.

    ``num_classes`` = K+1, the class axis it outputs: the events and background (29 in AVE).

    Shapes: (B, T, E) -> ``WeakOutput`` ((B, T), (B, K+1), (B, K+1), (B, K+1)).
    """

    def __init__(self, dim: int = 256, num_classes: int = 29, *, device=None, dtype=None) -> None:
        super().__init__()
        dim, num_classes = check_positive_int("dim", dim), check_positive_int("num_classes", num_classes)
        self.dim = dim
        self.relevance = nn.Linear(dim, 1, device=device, dtype=dtype)
        self.classifier = nn.Linear(dim, num_classes, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> WeakOutput:
        """Segment relevance, video class logits and the MIL-pooled video scores.

        Axes: B batch, T segments (T >= 1), E dim, K+1 num_classes (events and background).
        Shapes: x (B, T, E) -> ``WeakOutput(event_logits (B, T), class_logits (B, K+1),
        video_logits (B, K+1), video_scores (B, K+1))``.
        """
        check_input_dtypes(self, x=x)
        check_sequence_features("x", x, self.dim, nonempty=True)
        event_logits = self.relevance(x).squeeze(-1)
        class_logits = self.classifier(x.amax(dim=1))
        fused = torch.sigmoid(event_logits).unsqueeze(-1) * class_logits.unsqueeze(1)  # (b, t, k)
        video_logits = fused.amax(dim=1)
        return WeakOutput(event_logits, class_logits, video_logits, video_logits.softmax(dim=-1))
