"""TemporalWeightingHead: the weighting branch of weakly supervised PSP (Zhou et al., CVPR 2021),
from segment scores to a video-level class distribution.

Axis legend: b batch, t segments, k classes (29: 28 events + background).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
from torch import Tensor

from .._checks import check_input_dtypes, check_positive_int, check_sequence_features


class WeightedSegmentOutput(NamedTuple):
    """segment_logits s'_t = w_t s_t (B, T, K); segment_weights w_t (B, T); video_logits mean_t s'_t
    (B, K); video_probs softmax_k(video_logits) (B, K)."""

    segment_logits: Tensor
    segment_weights: Tensor
    video_logits: Tensor
    video_probs: Tensor


class TemporalWeightingHead(nn.Module):
    """``w_t = sigmoid(ReLU(u . s_t))`` from the segment's own class scores (``u``: bias-free
    ``Linear(K, 1)``, ``score_weight``), ``s'_t = w_t s_t``, video scores ``softmax_k(mean_t s'_t)``.

    The ReLU keeps ``w_t`` in [0.5, 1): the weights rescale each segment's scores but, being
    positive, never change a segment's argmax; they matter through the video-level average.

    ``num_classes`` = K, the class axis of the scores it weighs (29 in AVE, background included).

    Shapes: segment_scores (B, T, K) -> ``WeightedSegmentOutput`` ((B, T, K), (B, T), (B, K), (B, K)).
    """

    def __init__(self, num_classes: int = 29, *, device=None, dtype=None) -> None:
        super().__init__()
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.score_weight = nn.Linear(self.num_classes, 1, bias=False, device=device, dtype=dtype)

    def forward(self, segment_scores: Tensor) -> WeightedSegmentOutput:
        """Weigh each segment's class scores by its own confidence, then average to video scores.

        Axes: B batch, T segments (T >= 1), K num_classes.
        Shapes: segment_scores (B, T, K) -> ``WeightedSegmentOutput(segment_logits (B, T, K),
        segment_weights (B, T), video_logits (B, K), video_probs (B, K))``.
        """
        check_sequence_features("segment_scores", segment_scores, self.num_classes, nonempty=True)
        check_input_dtypes(self, segment_scores=segment_scores)
        weights = torch.sigmoid(torch.relu(self.score_weight(segment_scores)))  # (b, t, 1)
        weighted = segment_scores * weights
        video_logits = weighted.mean(dim=1)
        return WeightedSegmentOutput(weighted, weights.squeeze(-1), video_logits, video_logits.softmax(dim=-1))
