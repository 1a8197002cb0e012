"""The losses of avattn.losses against float64 transcriptions of their formulas, and their label checks.

Axis legend: B batch, T segments, E feature width, K classes.
"""

import pytest
import torch
import torch.nn.functional as F
from layer_equations import SHAPES, D, assert_same_forward_and_grads, rand

import avattn


def test_supervised_localization_loss_is_event_bce_plus_video_class_cross_entropy():
    event_logits, class_logits = rand(3, 10, grad=False), rand(3, 28, grad=False)
    seg = torch.randint(0, 29, (3, 10))
    vid = torch.randint(0, 28, (3,))
    loss = avattn.supervised_localization_loss(event_logits, class_logits, seg, vid)
    p = torch.sigmoid(event_logits)
    y = (seg != 28).to(D)
    bce = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
    ce = -(class_logits.log_softmax(-1)[torch.arange(3), vid]).mean()
    torch.testing.assert_close(loss, bce + ce)


def test_weak_localization_loss_is_the_multilabel_soft_margin_loss_of_the_video_scores():
    p = rand(4, 29, grad=False).softmax(-1)
    vid = torch.randint(0, 29, (4,))
    y = F.one_hot(vid, 29).to(D)
    expected = -(y * F.logsigmoid(p) + (1 - y) * F.logsigmoid(-p)).mean(-1).mean()
    torch.testing.assert_close(avattn.weak_localization_loss(p, vid), expected)


def test_segment_cross_entropy_is_the_mean_negative_log_softmax_at_the_labels():
    logits, labels = rand(3, 7, 29), torch.randint(0, 29, (3, 7))
    want = -sum(logits[b, t].log_softmax(-1)[labels[b, t]] for b in range(3) for t in range(7)) / 21
    torch.testing.assert_close(avattn.segment_cross_entropy(logits, labels), want)


def test_segment_soft_margin_loss_is_bce_of_sigmoid_over_every_entry():
    probs, labels = rand(3, 5, 29).softmax(-1), torch.randint(0, 29, (3, 5))
    y = F.one_hot(labels, 29).to(D)
    p = torch.sigmoid(probs)
    want = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
    torch.testing.assert_close(avattn.segment_soft_margin_loss(probs, labels), want)


def test_avps_target_is_uniform_over_the_video_class_segments_else_over_all_segments():
    labels = torch.tensor([[28, 3, 3, 28, 3], [28] * 5, [2, 2, 2, 2, 2], [28, 7, 5, 5, 28]])
    want = torch.tensor([[0, 1 / 3, 1 / 3, 0, 1 / 3], [0.2] * 5, [0.2] * 5, [0, 0, 0.5, 0.5, 0]], dtype=D)
    torch.testing.assert_close(avattn.avps_target(labels, dtype=D), want)
    assert avattn.avps_target(torch.tensor([[28]])).tolist() == [[1.0]]


@pytest.mark.parametrize("B,T", SHAPES)
def test_avps_loss_matches_equations(B, T):
    v, a = rand(B, T, 6), rand(B, T, 6)
    target = avattn.avps_target(torch.randint(0, 29, (B, T)), dtype=D)

    def ref(v, a):
        c = torch.stack(
            [torch.stack([v[b, t] @ a[b, t] / (v[b, t].norm() * a[b, t].norm()) for t in range(T)]) for b in range(B)]
        )
        p = torch.relu(c) / (torch.relu(c).sum(-1, keepdim=True) + 1e-8)
        return ((p - target) ** 2).mean()

    assert_same_forward_and_grads(lambda v, a: avattn.avps_loss(v, a, target), ref, [v, a], [])


def test_soft_target_bce_loss_is_the_mean_bce_against_soft_targets():
    probs = rand(4, 29).softmax(-1)
    q = torch.rand(4, 29, dtype=D)
    want = -(q * probs.log() + (1 - q) * (1 - probs).log()).mean()
    torch.testing.assert_close(avattn.soft_target_bce_loss(probs, q), want)


@pytest.mark.parametrize("bad", [-100, 29, 99])
@pytest.mark.parametrize("loss", ["segment_cross_entropy", "segment_soft_margin_loss", "avps_target"])
def test_segment_losses_name_a_label_out_of_range(loss, bad):
    """-100 must not be skipped as cross_entropy's ignore_index; 29 or 99 gets the argument and range."""
    labels = torch.randint(0, 29, (2, 5))
    labels[1, 3] = bad
    scores = torch.randn(2, 5, 29)
    call = (lambda: avattn.avps_target(labels)) if loss == "avps_target" else \
        (lambda: getattr(avattn, loss)(scores, labels))
    with pytest.raises(ValueError, match=rf"segment_labels must be in 0\.\.(28|27 or the background label 28), "
                                         rf"got {bad} at index \(1, 3\)"):
        call()


@pytest.mark.parametrize("model", ["psp", "avel"])
def test_weak_model_losses_name_a_video_label_out_of_range(model):
    from examples.avel.config import AVELConfig
    from examples.avel.model import AVEL
    from examples.psp.config import PSPConfig
    from examples.psp.model import PSP

    net = PSP(PSPConfig(setting="weak")) if model == "psp" else AVEL(AVELConfig(setting="weak", loss="cross_entropy"))
    output = net(torch.randn(2, 3, 7, 7, 512), torch.randn(2, 3, 128))
    for bad in (-100, 29):
        with pytest.raises(ValueError, match=rf"video_labels must be in 0\.\.28, got {bad} at index \(1,\)"):
            net.loss(output, torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, bad]))


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (
            lambda: avattn.segment_cross_entropy(torch.randn(2, 3, 29), torch.zeros(2, 4, dtype=torch.long)),
            ValueError,
            r"segment_labels must have shape \(B, T\) = \(2, 3\), got \(2, 4\)",
        ),
        (
            lambda: avattn.segment_cross_entropy(torch.randn(2, 29), torch.zeros(2, dtype=torch.long)),
            ValueError,
            r"segment_logits must have 3 dims \(B, T, K\), got shape \(2, 29\)",
        ),
        (
            lambda: avattn.segment_soft_margin_loss(torch.randn(2, 3, 29), torch.zeros(2, 3)),
            TypeError,
            r"segment_labels must be an integer tensor \(B, T\), got torch.float32",
        ),
        (
            lambda: avattn.avps_target(torch.zeros(2, 3, 29, dtype=torch.long)),
            ValueError,
            r"segment_labels must have shape \(B, T\), got \(2, 3, 29\)",
        ),
        (
            lambda: avattn.avps_target([[28, 1]]),
            TypeError,
            r"segment_labels must be an integer tensor \(B, T\), got list",
        ),
        (
            lambda: avattn.avps_loss(torch.randn(2, 3, 8), torch.randn(2, 3, 6), torch.rand(2, 3)),
            ValueError,
            r"audio must have the shape of visual \(2, 3, 8\), got \(2, 3, 6\)",
        ),
        (
            lambda: avattn.avps_loss(torch.randn(2, 3, 8), torch.randn(2, 3, 8), torch.rand(2, 4)),
            ValueError,
            r"target must have shape \(B, T\) = \(2, 3\), got \(2, 4\)",
        ),
        (
            lambda: avattn.soft_target_bce_loss(torch.rand(2, 29), torch.rand(2, 28)),
            ValueError,
            r"target must have the shape of video_probs \(2, 29\), got \(2, 28\)",
        ),
    ],
)
def test_loss_argument_errors_name_the_argument(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()
