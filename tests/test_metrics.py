"""The prediction rules and the segment accuracy of avattn.metrics, on hand-built scores.

Axis legend: B batch, T segments, K classes.
"""

import pytest
import torch

import avattn


def test_positive_event_segments_take_the_video_class_and_accuracy_is_the_matching_fraction():
    event = torch.tensor([[2.0, -1.0, 0.1], [-3.0, -0.2, 5.0]])
    cls = torch.zeros(2, 28)
    cls[0, 5] = 1
    cls[1, 27] = 1
    pred = avattn.predict_segments(event, cls)
    assert pred.tolist() == [[5, 28, 5], [28, 28, 27]]
    labels = torch.tensor([[5, 28, 4], [28, 3, 27]])
    torch.testing.assert_close(avattn.segment_accuracy(pred, labels), torch.tensor(4 / 6))
    # a weak head's 29-way argmax may itself say background
    cls29 = torch.zeros(2, 29)
    cls29[:, 28] = 1
    assert (avattn.predict_segments(event, cls29) == 28).all()


def test_predict_segment_classes_includes_background():
    scores = torch.zeros(2, 3, 29)
    scores[0, :, 28] = 1
    scores[1, 0, 4], scores[1, 1, 28], scores[1, 2, 0] = 1, 1, 1
    assert avattn.predict_segment_classes(scores).tolist() == [[28, 28, 28], [4, 28, 0]]


def test_predict_segment_classes_error_names_the_argument_and_its_shape():
    with pytest.raises(ValueError, match=r"segment_scores must have 3 dims \(B, T, K\), got shape \(2, 29\)"):
        avattn.predict_segment_classes(torch.randn(2, 29))
