"""Localization heads, their losses and the segment metric against float64 transcriptions."""

import torch
import torch.nn.functional as F

import avattn

D = torch.float64


def test_supervised_head_and_loss():
    head = avattn.SupervisedLocalizationHead(16, 28, dtype=D)
    x = torch.randn(3, 10, 16, dtype=D)
    out = head(x)
    torch.testing.assert_close(out.event_logits, (x @ head.relevance.weight.T + head.relevance.bias)[..., 0])
    torch.testing.assert_close(out.class_logits, x.max(1).values @ head.classifier.weight.T + head.classifier.bias)
    seg = torch.randint(0, 29, (3, 10))
    vid = torch.randint(0, 28, (3,))
    loss = avattn.supervised_localization_loss(out.event_logits, out.class_logits, seg, vid)
    p = torch.sigmoid(out.event_logits)
    y = (seg != 28).to(D)
    bce = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
    ce = -(out.class_logits.log_softmax(-1)[torch.arange(3), vid]).mean()
    torch.testing.assert_close(loss, bce + ce)


def test_weak_head_and_loss():
    head = avattn.WeakLocalizationHead(16, 29, dtype=D)
    x = torch.randn(4, 10, 16, dtype=D)
    out = head(x)
    s = x @ head.relevance.weight.T + head.relevance.bias  # (b, t, 1)
    z = x.max(1).values @ head.classifier.weight.T + head.classifier.bias
    fused = (torch.sigmoid(s) * z[:, None, :]).max(1).values
    torch.testing.assert_close(out.video_logits, fused)
    torch.testing.assert_close(out.video_scores, fused.softmax(-1))
    vid = torch.randint(0, 29, (4,))
    y = F.one_hot(vid, 29).to(D)
    p = out.video_scores
    expected = -(y * F.logsigmoid(p) + (1 - y) * F.logsigmoid(-p)).mean(-1).mean()
    torch.testing.assert_close(avattn.weak_localization_loss(p, vid), expected)


def test_predict_segments_and_accuracy():
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
