"""TemporalWeightingHead against a float64 transcription with explicit loops over videos and segments.

Axis legend: B batch, T segments, K classes.
"""

import pytest
import torch
from layer_equations import SHAPES, D, grads, rand

import avattn


def weighting_equations(head, s):
    B, T, K = s.shape
    w = torch.stack(
        [
            torch.stack([torch.sigmoid(torch.relu(s[b, t] @ head.score_weight.weight[0])) for t in range(T)])
            for b in range(B)
        ]
    )
    weighted = s * w[..., None]
    video = sum(weighted[:, t] for t in range(T)) / T
    return weighted, w, video, torch.exp(video) / torch.exp(video).sum(-1, keepdim=True)


@pytest.mark.parametrize("B,T", SHAPES)
def test_temporal_weighting_matches_equations(B, T):
    head = avattn.TemporalWeightingHead(29, dtype=D)
    s = rand(B, T, 29)
    out = head(s)
    ref = weighting_equations(head, s)
    for got, want in zip(out, ref, strict=True):
        torch.testing.assert_close(got, want)
    assert ((out.segment_weights >= 0.5) & (out.segment_weights < 1)).all()
    torch.testing.assert_close(avattn.predict_segment_classes(out.segment_logits), s.argmax(-1))
    seed = torch.randn_like(out.video_probs)
    for g, r in zip(
        grads(out.video_probs, [s, head.score_weight.weight], seed), grads(ref[3], [s, head.score_weight.weight], seed)
    ):
        torch.testing.assert_close(g, r)
    assert torch.autograd.gradcheck(lambda s: head(s).video_probs, (rand(2, 3, 29),))


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda: avattn.TemporalWeightingHead(0), ValueError, r"num_classes must be an integer >= 1, got 0"),
        (
            lambda: avattn.TemporalWeightingHead(29)(torch.randn(2, 3, 28)),
            ValueError,
            r"segment_scores must have shape \(B, T, 29\), got \(2, 3, 28\)",
        ),
        (
            lambda: avattn.TemporalWeightingHead(29)(torch.randn(2, 0, 29)),
            ValueError,
            r"segment_scores must have at least one time step \(B, T >= 1, 29\), got \(2, 0, 29\)",
        ),
    ],
)
def test_temporal_weighting_argument_errors_name_the_argument(call, exc, pattern):
    """Constructor and forward arguments: the error names the argument, what it got and what it expects."""
    with pytest.raises(exc, match=pattern):
        call()
