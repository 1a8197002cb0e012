"""SupervisedLocalizationHead and WeakLocalizationHead against float64 transcriptions of their equations.

Axis legend: B batch, T segments, E input width, K classes.
"""

import torch
from layer_equations import D, lin

import avattn


def test_supervised_head_scores_each_segment_and_classifies_the_max_pooled_video():
    head = avattn.SupervisedLocalizationHead(16, 28, dtype=D)
    x = torch.randn(3, 10, 16, dtype=D)
    out = head(x)
    torch.testing.assert_close(out.event_logits, lin(head.relevance, x)[..., 0])
    torch.testing.assert_close(out.class_logits, lin(head.classifier, x.max(1).values))


def test_weak_head_weights_video_logits_by_segment_relevance_and_max_pools_over_time():
    head = avattn.WeakLocalizationHead(16, 29, dtype=D)
    x = torch.randn(4, 10, 16, dtype=D)
    out = head(x)
    s = lin(head.relevance, x)  # (B, T, 1)
    z = lin(head.classifier, x.max(1).values)
    fused = (torch.sigmoid(s) * z[:, None, :]).max(1).values
    torch.testing.assert_close(out.video_logits, fused)
    torch.testing.assert_close(out.video_scores, fused.softmax(-1))
