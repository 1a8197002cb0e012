"""SegmentClassifier against a float64 transcription: an optional ReLU hidden layer, then the class scores.

Axis legend: B batch, T segments, E input width, K classes.
"""

import pytest
import torch
from layer_equations import SHAPES, D, assert_same_forward_and_grads, lin, rand

import avattn


@pytest.mark.parametrize("B,T", SHAPES)
@pytest.mark.parametrize("hidden_dim,bias", [(5, True), (5, False), (None, True)])
def test_segment_classifier_matches_equations(B, T, hidden_dim, bias):
    head = avattn.SegmentClassifier(6, 29, hidden_dim=hidden_dim, bias=bias, dtype=D)

    def ref(x):
        if hidden_dim is not None:
            x = torch.relu(lin(head.hidden, x))
        return lin(head.output, x)

    assert (head.output.bias is None) == (not bias)
    x = rand(B, T, 6)
    assert head(x).shape == (B, T, 29)
    assert_same_forward_and_grads(head, ref, [x], list(head.parameters()))


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda: avattn.SegmentClassifier(0), ValueError, r"input_dim must be an integer >= 1, got 0"),
        (lambda: avattn.SegmentClassifier(8, 0), ValueError, r"num_classes must be an integer >= 1, got 0"),
        (lambda: avattn.SegmentClassifier(8, hidden_dim=0), ValueError, r"hidden_dim must be an integer >= 1, got 0"),
        (lambda: avattn.SegmentClassifier(8, bias=None), ValueError, r"bias must be True or False, got None"),
        (
            lambda: avattn.SegmentClassifier(8)(torch.randn(2, 3, 4)),
            ValueError,
            r"x must have shape \(B, T, 8\), got \(2, 3, 4\)",
        ),
    ],
)
def test_segment_classifier_argument_errors_name_the_argument(call, exc, pattern):
    """Constructor and forward arguments: the error names the argument, what it got and what it expects."""
    with pytest.raises(exc, match=pattern):
        call()
