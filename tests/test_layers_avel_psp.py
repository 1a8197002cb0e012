"""The AVEL and PSP layers against float64 transcriptions of their equations, written here in plain torch.

BiLSTMEncoder (and nn.LSTM), DMRN, PositiveSamplePropagation, SegmentClassifier, TemporalWeightingHead,
their losses and prediction rule; constructor and shape errors; torch.compile(fullgraph=True); and the
maps from the reference implementations' state-dict keys to these layers' parameters.
"""

import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import avattn

D = torch.float64
SHAPES = [(1, 1), (1, 5), (3, 10), (3, 7)]  # (B, T): T=1, odd T, batch 1 and 3


def rand(*shape, grad=True):
    return torch.randn(*shape, dtype=D, requires_grad=grad)


def grads(out, inputs, seed_tensor):
    """Gradients of <out, seed_tensor> with respect to inputs (None where unused)."""
    return torch.autograd.grad((out * seed_tensor).sum(), inputs, allow_unused=True)


def assert_same_forward_and_grads(layer_fn, ref_fn, inputs, params):
    out, ref = layer_fn(*inputs), ref_fn(*inputs)
    torch.testing.assert_close(out, ref)
    seed = torch.randn_like(ref)
    for g, r in zip(grads(out, [*inputs, *params], seed), grads(ref, [*inputs, *params], seed), strict=True):
        torch.testing.assert_close(g, r)


# ---------------------------------------------------------------- BiLSTMEncoder


def lstm_direction(x, w_ih, w_hh, b_ih, b_hh, reverse):
    """One LSTM direction, step by step: gates i, f, g, o from zero (h, c)."""
    B, T, _ = x.shape
    H = w_hh.shape[1]
    h, c = x.new_zeros(B, H), x.new_zeros(B, H)
    out = [None] * T
    for t in reversed(range(T)) if reverse else range(T):
        z = x[:, t] @ w_ih.T + h @ w_hh.T
        if b_ih is not None:
            z = z + b_ih + b_hh
        i, f, g, o = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        out[t] = h
    return torch.stack(out, dim=1)


def bilstm_equations(enc, x):
    p = dict(enc.named_parameters())
    for layer in range(enc.num_layers):
        x = torch.cat(
            [
                lstm_direction(
                    x,
                    p[f"weight_ih_l{layer}{s}"],
                    p[f"weight_hh_l{layer}{s}"],
                    p.get(f"bias_ih_l{layer}{s}"),
                    p.get(f"bias_hh_l{layer}{s}"),
                    reverse=bool(s),
                )
                for s in ("", "_reverse")
            ],
            dim=-1,
        )
    return x


@pytest.mark.parametrize("B,T", SHAPES)
@pytest.mark.parametrize("num_layers,bias", [(1, True), (2, True), (1, False)])
def test_bilstm_matches_equations(B, T, num_layers, bias):
    enc = avattn.BiLSTMEncoder(6, 4, num_layers=num_layers, bias=bias, dtype=D)
    x = rand(B, T, 6)
    assert enc(x).shape == (B, T, 8)
    assert_same_forward_and_grads(enc, lambda x: bilstm_equations(enc, x), [x], list(enc.parameters()))


@pytest.mark.parametrize("num_layers,bias", [(1, True), (2, False)])
def test_bilstm_unrolled_path_matches_equations(monkeypatch, num_layers, bias):
    """The time-unrolled recurrence that torch.compile traces, run eagerly."""
    enc = avattn.BiLSTMEncoder(5, 3, num_layers=num_layers, bias=bias, dtype=D)
    x = rand(3, 7, 5)
    expected = enc(x)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert_same_forward_and_grads(enc, lambda x: bilstm_equations(enc, x), [x], list(enc.parameters()))
    torch.testing.assert_close(enc(x), expected)


def test_bilstm_gradcheck():
    enc = avattn.BiLSTMEncoder(3, 2, dtype=D)
    assert torch.autograd.gradcheck(enc, (rand(2, 3, 3),))


@pytest.mark.parametrize("dtype", [torch.float32, D])
def test_bilstm_is_nn_lstm(dtype):
    """Same parameter names, shapes and order as nn.LSTM(batch_first, bidirectional); the state dicts
    load into each other; outputs equal nn.LSTM's from no state and from explicit zero states."""
    lstm = nn.LSTM(12, 8, 1, batch_first=True, bidirectional=True, dtype=dtype)
    enc = avattn.BiLSTMEncoder(12, 8, dtype=dtype)
    assert [(n, p.shape) for n, p in enc.named_parameters()] == [(n, p.shape) for n, p in lstm.named_parameters()]
    enc.load_state_dict(lstm.state_dict())
    x = torch.randn(3, 9, 12, dtype=dtype)
    zeros = torch.zeros(2, 3, 8, dtype=dtype)
    torch.testing.assert_close(enc(x), lstm(x)[0], rtol=0, atol=0)
    torch.testing.assert_close(enc(x), lstm(x, (zeros, zeros))[0], rtol=0, atol=0)
    fresh = avattn.BiLSTMEncoder(12, 8, dtype=dtype)
    lstm.load_state_dict(fresh.state_dict())  # and the other way
    torch.testing.assert_close(fresh(x), lstm(x)[0], rtol=0, atol=0)


def test_bilstm_runs_in_float32_under_cpu_float16_autocast():
    """oneDNN has no fp16 LSTM on CPU: under fp16 autocast the encoder gives its float32 result, gradients too."""
    enc = avattn.BiLSTMEncoder(5, 4, num_layers=2)
    x = torch.randn(2, 7, 5, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.float16):
        got = enc(x.half())  # a half input (an fp16 layer before it) as well
    want = enc(x.half().float())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    (g,) = torch.autograd.grad(got.sum(), x)
    (w,) = torch.autograd.grad(want.sum(), x)
    torch.testing.assert_close(g, w, rtol=0, atol=0)


def test_bilstm_init_like_nn_lstm():
    enc = avattn.BiLSTMEncoder(20, 16)
    bound = 1 / math.sqrt(16)
    for name, p in enc.named_parameters():
        assert p.abs().max() <= bound, name
        assert p.std() > bound / 2, name  # uniform on +-bound has std bound/sqrt(3)


# ---------------------------------------------------------------- DMRN


def dmrn_equations(m, v, a, swap):
    """The AVEL code's block loop (swap=True) or the paper's residual order (swap=False)."""

    def u(seq, x):
        return seq[2](torch.tanh(seq[0](x)))

    for _ in range(m.num_layers):
        merged = (u(m.visual_transform, v) + u(m.audio_transform, a)) * 0.5
        if swap:
            v, a = torch.tanh(a + merged), torch.tanh(v + merged)
        else:
            v, a = torch.tanh(v + merged), torch.tanh(a + merged)
    return (v + a) * 0.5


@pytest.mark.parametrize("B,T", SHAPES)
@pytest.mark.parametrize("num_layers,swap", [(1, True), (2, True), (3, False)])
def test_dmrn_matches_equations(B, T, num_layers, swap):
    m = avattn.DMRN(6, num_layers=num_layers, swap_residuals=swap, dtype=D)
    v, a = rand(B, T, 6), rand(B, T, 6)
    assert_same_forward_and_grads(m, lambda v, a: dmrn_equations(m, v, a, swap), [v, a], list(m.parameters()))


def test_dmrn_residual_order_matters_only_beyond_one_block():
    v, a = rand(2, 5, 6, grad=False), rand(2, 5, 6, grad=False)
    one = avattn.DMRN(6, dtype=D)
    one_paper = avattn.DMRN(6, swap_residuals=False, dtype=D)
    one_paper.load_state_dict(one.state_dict())
    torch.testing.assert_close(one(v, a), one_paper(v, a))
    two = avattn.DMRN(6, num_layers=2, dtype=D)
    two_paper = avattn.DMRN(6, num_layers=2, swap_residuals=False, dtype=D)
    two_paper.load_state_dict(two.state_dict())
    assert (two(v, a) - two_paper(v, a)).abs().max() > 1e-3


def test_dmrn_gradcheck():
    m = avattn.DMRN(4, num_layers=2, dtype=D)
    assert torch.autograd.gradcheck(m, (rand(1, 3, 4), rand(1, 3, 4)))


# ---------------------------------------------------------------- PositiveSamplePropagation


def psp_equations(m, v, a, *, renormalize, threshold, fc, drop=lambda x: x, eps=1e-8):
    """The PSP module with explicit loops over videos and rows; ``drop`` is applied in the reference's
    order (v1, v2, a1, a2, then the two output projections)."""

    def branch(w, x):
        return drop(torch.relu(x @ w.T))

    v1, v2 = branch(m.visual_value.weight, v), branch(m.visual_query.weight, v)
    a1, a2 = branch(m.audio_key.weight, a), branch(m.audio_value.weight, a)
    B, T, E = v.shape

    def prune(row):
        beta = row / (row.sum() + eps)
        gamma = torch.where(beta > threshold, beta, torch.zeros_like(beta))
        return gamma / (gamma.sum() + eps) if renormalize else gamma

    v_new, a_new, g_va, g_av = [], [], [], []
    for b in range(B):
        S = torch.stack(
            [torch.stack([torch.relu(v2[b, t] @ a1[b, s] / math.sqrt(E)) for s in range(T)]) for t in range(T)]
        )
        gva = torch.stack([prune(S[t, :]) for t in range(T)])  # row: visual t over audio s
        gav = torch.stack([prune(S[:, s]) for s in range(T)])  # row: audio s over visual t
        v_new.append(v[b] + gva @ a2[b])
        a_new.append(a[b] + gav @ v1[b])
        g_va.append(gva)
        g_av.append(gav)
    vp, ap = torch.stack(v_new), torch.stack(a_new)
    if fc:
        vp, ap = branch(m.visual_out.weight, vp), branch(m.audio_out.weight, ap)

    def ln(x):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-6) * m.norm.weight + m.norm.bias

    vp, ap = ln(vp), ln(ap)
    return (vp + ap) * 0.5, vp, ap, torch.stack(g_va), torch.stack(g_av)


def perturbed_psp(dim, **kw):
    m = avattn.PositiveSamplePropagation(dim, dtype=D, **kw)
    with torch.no_grad():  # LayerNorm's affine parameters off their identity init, so they count
        m.norm.weight.normal_(1.0, 0.3)
        m.norm.bias.normal_(0.0, 0.3)
    return m


@pytest.mark.parametrize("B,T", SHAPES)
@pytest.mark.parametrize(
    "variant,renormalize,fc",
    [("supervised", True, True), ("weak", False, False), ("weak", True, False), ("supervised", False, True)],
)
def test_psp_matches_equations(B, T, variant, renormalize, fc):
    m = perturbed_psp(8, variant=variant, renormalize=renormalize).eval()
    assert m.threshold == {"supervised": 0.099, "weak": 0.095}[variant]
    v, a = rand(B, T, 8), rand(B, T, 8)
    (fused, vp, ap), (g_va, g_av) = m(v, a, return_weights=True)
    ref = psp_equations(m, v, a, renormalize=renormalize, threshold=m.threshold, fc=fc)
    for got, want in zip((fused, vp, ap, g_va, g_av), ref, strict=True):
        torch.testing.assert_close(got, want)
    seed = torch.randn_like(fused)
    params = list(m.parameters())
    for g, r in zip(grads(fused, [v, a, *params], seed), grads(ref[0], [v, a, *params], seed), strict=True):
        torch.testing.assert_close(g, r)


@pytest.mark.parametrize("variant", ["supervised", "weak"])
def test_psp_training_dropout_in_reference_order(variant):
    """In training the same dropout masks (same seed, same call order and shapes) give the same result:
    the affinity, hence the pruning, is computed from dropped-out branches."""
    m = perturbed_psp(8, variant=variant, dropout=0.3).train()
    v, a = rand(3, 10, 8), rand(3, 10, 8)
    torch.manual_seed(7)
    out = m(v, a)
    torch.manual_seed(7)
    ref = psp_equations(
        m,
        v,
        a,
        renormalize=m.renormalize,
        threshold=m.threshold,
        fc=variant == "supervised",
        drop=lambda x: F.dropout(x, 0.3),
    )
    torch.testing.assert_close(out.fused, ref[0])
    torch.testing.assert_close(out.fused, (out.visual + out.audio) / 2)
    assert not torch.allclose(out.fused, m.eval()(v, a).fused)


def test_psp_pruning_and_row_sums():
    m = avattn.PositiveSamplePropagation(16, variant="weak", threshold=0.12, dtype=D).eval()
    _, (g_va, g_av) = m(rand(3, 10, 16, grad=False), rand(3, 10, 16, grad=False), return_weights=True)
    for g in (g_va, g_av):
        assert ((g == 0) | (g > 0.12)).all()  # without renormalisation the kept entries are the beta > tau
        assert (g.sum(-1) <= 1 + 1e-12).all()
    m.renormalize = True
    _, (g_va, _) = m(rand(3, 10, 16, grad=False), rand(3, 10, 16, grad=False), return_weights=True)
    row_sums = g_va.sum(-1)
    assert ((row_sums - 1).abs() < 1e-6).logical_or(row_sums == 0).all()


def test_psp_zero_affinity_propagates_nothing():
    m = avattn.PositiveSamplePropagation(8, variant="weak", dtype=D).eval()
    with torch.no_grad():
        m.visual_query.weight.zero_()  # S = ReLU(0) = 0 everywhere
    v, a = rand(2, 5, 8, grad=False), rand(2, 5, 8, grad=False)
    out, (g_va, g_av) = m(v, a, return_weights=True)
    assert not g_va.any() and not g_av.any()
    torch.testing.assert_close(out.visual, m.norm(v))
    torch.testing.assert_close(out.audio, m.norm(a))


def test_psp_single_segment_keeps_its_pair():
    """T=1: the one normalised weight is 1 (above any threshold < 1) where the affinity is positive."""
    m = avattn.PositiveSamplePropagation(8, dtype=D).eval()
    _, (g_va, _) = m(rand(4, 1, 8, grad=False), rand(4, 1, 8, grad=False), return_weights=True)
    assert ((g_va - 1).abs() < 1e-6).logical_or(g_va == 0).all()


def test_psp_variant_parameter_sets():
    sup = avattn.PositiveSamplePropagation(256)
    weak = avattn.PositiveSamplePropagation(256, variant="weak")
    assert sum(p.numel() for p in sup.parameters()) == 6 * 256 * 256 + 2 * 256
    assert sum(p.numel() for p in weak.parameters()) == 4 * 256 * 256 + 2 * 256
    assert sup.renormalize and not weak.renormalize


@pytest.mark.parametrize("variant", ["supervised", "weak"])
def test_psp_float32_error_within_plain_torch_float32_error(variant):
    """In float32 the layer's distance from the float64 result is of the order of the plain-torch
    transcription's own float32 distance."""
    m64 = perturbed_psp(32, variant=variant).eval()
    v, a = rand(3, 10, 32, grad=False), rand(3, 10, 32, grad=False)
    truth = m64(v, a).fused
    m32 = copy.deepcopy(m64).float()
    ours = m32(v.float(), a.float()).fused.double()
    plain = psp_equations(
        m32, v.float(), a.float(), renormalize=m32.renormalize, threshold=m32.threshold, fc=variant == "supervised"
    )
    our_err, plain_err = (ours - truth).abs().max(), (plain[0].double() - truth).abs().max()
    assert 0 < plain_err < 1e-4
    assert our_err <= 4 * plain_err


def test_dmrn_bfloat16_error_within_plain_torch_bfloat16_error():
    m64 = avattn.DMRN(32, num_layers=2, dtype=D)
    v, a = rand(3, 10, 32, grad=False), rand(3, 10, 32, grad=False)
    truth = m64(v, a)
    m16 = copy.deepcopy(m64).bfloat16()
    ours = m16(v.bfloat16(), a.bfloat16()).double()
    plain = dmrn_equations(m16, v.bfloat16(), a.bfloat16(), swap=True).double()
    our_err, plain_err = (ours - truth).abs().max(), (plain - truth).abs().max()
    assert 0 < plain_err < 0.1
    assert our_err <= 2 * plain_err


# ---------------------------------------------------------------- heads


@pytest.mark.parametrize("B,T", SHAPES)
@pytest.mark.parametrize("hidden_dim,bias", [(5, True), (5, False), (None, True)])
def test_segment_classifier_matches_equations(B, T, hidden_dim, bias):
    head = avattn.SegmentClassifier(6, 29, hidden_dim=hidden_dim, bias=bias, dtype=D)

    def ref(x):
        if hidden_dim is not None:
            x = torch.relu(F.linear(x, head.hidden.weight, head.hidden.bias))
        return F.linear(x, head.output.weight, head.output.bias)

    assert (head.output.bias is None) == (not bias)
    x = rand(B, T, 6)
    assert head(x).shape == (B, T, 29)
    assert_same_forward_and_grads(head, ref, [x], list(head.parameters()))


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


# ---------------------------------------------------------------- losses and prediction


def test_segment_cross_entropy():
    logits, labels = rand(3, 7, 29), torch.randint(0, 29, (3, 7))
    want = -sum(logits[b, t].log_softmax(-1)[labels[b, t]] for b in range(3) for t in range(7)) / 21
    torch.testing.assert_close(avattn.segment_cross_entropy(logits, labels), want)


def test_segment_soft_margin_loss_is_bce_of_sigmoid_over_every_entry():
    probs, labels = rand(3, 5, 29).softmax(-1), torch.randint(0, 29, (3, 5))
    y = F.one_hot(labels, 29).to(D)
    p = torch.sigmoid(probs)
    want = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
    torch.testing.assert_close(avattn.segment_soft_margin_loss(probs, labels), want)


def test_avps_target():
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


def test_soft_target_bce_loss():
    probs = rand(4, 29).softmax(-1)
    q = torch.rand(4, 29, dtype=D)
    want = -(q * probs.log() + (1 - q) * (1 - probs).log()).mean()
    torch.testing.assert_close(avattn.soft_target_bce_loss(probs, q), want)


def test_predict_segment_classes_includes_background():
    scores = torch.zeros(2, 3, 29)
    scores[0, :, 28] = 1
    scores[1, 0, 4], scores[1, 1, 28], scores[1, 2, 0] = 1, 1, 1
    assert avattn.predict_segment_classes(scores).tolist() == [[28, 28, 28], [4, 28, 0]]


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


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "build, pattern",
    [
        (lambda: avattn.BiLSTMEncoder(0), r"input_dim must be an integer >= 1, got 0"),
        (lambda: avattn.BiLSTMEncoder(8, 2.5), r"hidden_dim must be an integer >= 1, got 2.5"),
        (lambda: avattn.BiLSTMEncoder(8, num_layers=0), r"num_layers must be an integer >= 1, got 0"),
        (lambda: avattn.BiLSTMEncoder(8, bias=1), r"bias must be True or False, got 1"),
        (lambda: avattn.DMRN(-1), r"dim must be an integer >= 1, got -1"),
        (lambda: avattn.DMRN(8, num_layers=0), r"num_layers must be an integer >= 1, got 0"),
        (lambda: avattn.DMRN(8, swap_residuals="yes"), r"swap_residuals must be True or False, got 'yes'"),
        (lambda: avattn.PositiveSamplePropagation(True), r"dim must be an integer >= 1, got True"),
        (
            lambda: avattn.PositiveSamplePropagation(8, variant="full"),
            r"variant must be one of \('supervised', 'weak'\), got 'full'",
        ),
        (
            lambda: avattn.PositiveSamplePropagation(8, threshold=1.0),
            r"threshold must be a number in \[0, 1\), got 1.0",
        ),
        (
            lambda: avattn.PositiveSamplePropagation(8, threshold=-0.1),
            r"threshold must be a number in \[0, 1\), got -0.1",
        ),
        (lambda: avattn.PositiveSamplePropagation(8, dropout=1), r"dropout must be a number in \[0, 1\), got 1"),
        (lambda: avattn.PositiveSamplePropagation(8, renormalize="no"), r"renormalize must be True, False or None"),
        (lambda: avattn.PositiveSamplePropagation(8, eps=0.0), r"eps must be a finite number > 0, got 0.0"),
        (
            lambda: avattn.PositiveSamplePropagation(8, norm_eps=float("nan")),
            r"norm_eps must be a finite number > 0, got nan",
        ),
        (lambda: avattn.SegmentClassifier(0), r"input_dim must be an integer >= 1, got 0"),
        (lambda: avattn.SegmentClassifier(8, 0), r"num_classes must be an integer >= 1, got 0"),
        (lambda: avattn.SegmentClassifier(8, hidden_dim=0), r"hidden_dim must be an integer >= 1, got 0"),
        (lambda: avattn.SegmentClassifier(8, bias=None), r"bias must be True or False, got None"),
        (lambda: avattn.TemporalWeightingHead(0), r"num_classes must be an integer >= 1, got 0"),
    ],
)
def test_constructor_errors_name_the_argument(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        build()


def test_numpy_sizes_accepted():
    np = pytest.importorskip("numpy")
    assert avattn.SegmentClassifier(np.int64(8), hidden_dim=np.int32(4)).hidden.out_features == 4
    assert avattn.PositiveSamplePropagation(8, threshold=np.float32(0.25)).threshold == pytest.approx(0.25)


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (
            lambda: avattn.BiLSTMEncoder(8)(torch.randn(2, 3, 7)),
            ValueError,
            r"x must have shape \(B, T, 8\), got \(2, 3, 7\)",
        ),
        (
            lambda: avattn.BiLSTMEncoder(8)(torch.randn(2, 8)),
            ValueError,
            r"x must have 3 dims \(B, T, 8\), got shape \(2, 8\)",
        ),
        (
            lambda: avattn.BiLSTMEncoder(8)(torch.randn(2, 0, 8)),
            ValueError,
            r"x must have at least one time step \(B, T >= 1, 8\), got \(2, 0, 8\)",
        ),
        (
            lambda: avattn.BiLSTMEncoder(8)(torch.ones(2, 3, 8, dtype=torch.long)),
            TypeError,
            r"x must be a floating tensor",
        ),
        (
            lambda: avattn.DMRN(8)(torch.randn(2, 3, 8), torch.randn(2, 3, 6)),
            ValueError,
            r"audio must have shape \(B, T, 8\), got \(2, 3, 6\)",
        ),
        (
            lambda: avattn.DMRN(8)(torch.randn(2, 3, 8), torch.randn(2, 4, 8)),
            ValueError,
            r"audio must share \(B, T\) = \(2, 3\) with visual, got \(2, 4, 8\)",
        ),
        (
            lambda: avattn.DMRN(8)(torch.randn(3, 8), torch.randn(2, 3, 8)),
            ValueError,
            r"visual must have 3 dims \(B, T, 8\), got shape \(3, 8\)",
        ),
        (
            lambda: avattn.PositiveSamplePropagation(8)(torch.randn(2, 3, 9), torch.randn(2, 3, 8)),
            ValueError,
            r"visual must have shape \(B, T, 8\), got \(2, 3, 9\)",
        ),
        (
            lambda: avattn.PositiveSamplePropagation(8)(torch.randn(2, 3, 8), torch.randn(1, 3, 8)),
            ValueError,
            r"audio must share \(B, T\) = \(2, 3\) with visual, got \(1, 3, 8\)",
        ),
        (
            lambda: avattn.SegmentClassifier(8)(torch.randn(2, 3, 4)),
            ValueError,
            r"x must have shape \(B, T, 8\), got \(2, 3, 4\)",
        ),
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
        (
            lambda: avattn.predict_segment_classes(torch.randn(2, 29)),
            ValueError,
            r"segment_scores must have 3 dims \(B, T, K\), got shape \(2, 29\)",
        ),
    ],
)
def test_call_errors_name_the_argument(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ---------------------------------------------------------------- torch.compile

COMPILE_CASES = {
    "BiLSTMEncoder": lambda: (avattn.BiLSTMEncoder(12, 8, num_layers=2), (torch.randn(3, 7, 12),)),
    "DMRN": lambda: (avattn.DMRN(16, num_layers=2), (torch.randn(3, 7, 16), torch.randn(3, 7, 16))),
    "PSP-supervised": lambda: (avattn.PositiveSamplePropagation(16), (torch.randn(3, 10, 16), torch.randn(3, 10, 16))),
    "PSP-weak": lambda: (
        avattn.PositiveSamplePropagation(16, variant="weak"),
        (torch.randn(1, 1, 16), torch.randn(1, 1, 16)),
    ),
    "SegmentClassifier": lambda: (avattn.SegmentClassifier(16, 29), (torch.randn(3, 7, 16),)),
    "TemporalWeightingHead": lambda: (avattn.TemporalWeightingHead(29), (torch.randn(3, 7, 29),)),
}


def _tensors(out):
    return [t for t in (out if isinstance(out, tuple) else (out,)) if isinstance(t, torch.Tensor)]


@pytest.mark.parametrize("name", sorted(COMPILE_CASES))
def test_compile_fullgraph_matches_eager(name):
    torch._dynamo.reset()
    module, inputs = COMPILE_CASES[name]()
    module.eval()
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    eager_out, compiled_out = _tensors(module(*inputs)), _tensors(compiled(*inputs))
    for e, c in zip(eager_out, compiled_out, strict=True):
        torch.testing.assert_close(c, e)
    params = list(module.parameters())
    for ge, gc in zip(*(torch.autograd.grad(sum(o.sum() for o in outs), params) for outs in (eager_out, compiled_out))):
        torch.testing.assert_close(gc, ge)


def test_compile_psp_with_weights():
    torch._dynamo.reset()
    m = avattn.PositiveSamplePropagation(16).eval()
    v, a = torch.randn(2, 10, 16), torch.randn(2, 10, 16)
    out, w = torch.compile(lambda v, a: m(v, a, return_weights=True), fullgraph=True, backend="aot_eager")(v, a)
    ref_out, ref_w = m(v, a, return_weights=True)
    torch.testing.assert_close(out.fused, ref_out.fused)
    torch.testing.assert_close(w.visual_from_audio, ref_w.visual_from_audio)


# ---------------------------------------------------------------- reference state dicts -> layers


def avel_reference_modules(dmrn: bool) -> nn.ModuleDict:
    """The AVEL reference models' parameter-holding modules, built with plain torch under their own names."""
    m = nn.ModuleDict(
        {
            "lstm_audio": nn.LSTM(128, 128, 1, batch_first=True, bidirectional=True),
            "lstm_video": nn.LSTM(512, 128, 1, batch_first=True, bidirectional=True),
            "affine_audio": nn.Linear(128, 512),
            "affine_video": nn.Linear(512, 512),
            "affine_v": nn.Linear(512, 49, bias=False),
            "affine_g": nn.Linear(512, 49, bias=False),
            "affine_h": nn.Linear(49, 1, bias=False),
        }
    )
    if dmrn:
        for name in ("U_v", "U_a"):
            m[name] = nn.Sequential(nn.Linear(256, 256), nn.Tanh(), nn.Linear(256, 256))
        m["L2"] = nn.Linear(256, 29)
    else:
        m["L1"], m["L2"] = nn.Linear(512, 64), nn.Linear(64, 29)
    return m


def avel_layers(dmrn: bool) -> nn.ModuleDict:
    m = nn.ModuleDict(
        {
            "attention": avattn.AGVA(512, 128, hidden_dim=512, attention_dim=49, audio_along_cells=True),
            "audio_lstm": avattn.BiLSTMEncoder(128, 128),
            "visual_lstm": avattn.BiLSTMEncoder(512, 128),
        }
    )
    if dmrn:
        m["fusion"] = avattn.DMRN(256)
        m["classifier"] = avattn.SegmentClassifier(256, 29, hidden_dim=None)
    else:
        m["classifier"] = avattn.SegmentClassifier(512, 29, hidden_dim=64)
    return m


AVEL_KEY_MAP = {  # reference prefix -> layer prefix
    "lstm_audio.": "audio_lstm.",
    "lstm_video.": "visual_lstm.",
    "affine_audio.": "attention.audio_hidden.",
    "affine_video.": "attention.visual_hidden.",
    "affine_v.": "attention.visual_key.",
    "affine_g.": "attention.audio_key.",
    "affine_h.": "attention.score.",
    "L1.": "classifier.hidden.",
    "U_v.": "fusion.visual_transform.",
    "U_a.": "fusion.audio_transform.",
    "L2.": "classifier.output.",
}

PSP_SUPERVISED_KEY_MAP = {
    "fa.": "audio_projection.",
    "fv.": "visual_projection.",
    "attention.affine_audio.": "attention.audio_hidden.",
    "attention.affine_video.": "attention.visual_hidden.",
    "attention.affine_v.": "attention.visual_key.",
    "attention.affine_g.": "attention.audio_key.",
    "attention.affine_h.": "attention.score.",
    "lstm_a_v.lstm_audio.": "audio_lstm.",
    "lstm_a_v.lstm_video.": "visual_lstm.",
    "psp.v_L1.": "psp.visual_value.",
    "psp.v_L2.": "psp.visual_query.",
    "psp.a_L1.": "psp.audio_key.",
    "psp.a_L2.": "psp.audio_value.",
    "psp.v_fc.": "psp.visual_out.",
    "psp.a_fc.": "psp.audio_out.",
    "psp.layer_norm.": "psp.norm.",
    "L1.": "classifier.hidden.",
    "L2.": "classifier.output.",
}
PSP_WEAK_KEY_MAP = {
    **{k: v for k, v in PSP_SUPERVISED_KEY_MAP.items() if k not in ("fa.", "fv.", "psp.v_fc.", "psp.a_fc.")},
    "linear_v.": "visual_projection.",
    "W3.": "weighting.score_weight.",
}


def psp_reference_modules(weak: bool) -> nn.ModuleDict:
    """The PSP reference models' used parameters, under their own names (unused keys left out)."""
    lstms = nn.ModuleDict(
        {n: nn.LSTM(128, 128, 1, batch_first=True, bidirectional=True) for n in ("lstm_audio", "lstm_video")}
    )
    att = nn.ModuleDict(
        {
            "affine_audio": nn.Linear(128, 512),
            "affine_video": nn.Linear(512, 512),
            "affine_v": nn.Linear(512, 49, bias=False),
            "affine_g": nn.Linear(512, 49, bias=False),
            "affine_h": nn.Linear(49, 1, bias=False),
        }
    )
    names = ("v_L1", "v_L2", "a_L1", "a_L2") if weak else ("v_L1", "v_L2", "v_fc", "a_L1", "a_L2", "a_fc")
    psp = nn.ModuleDict({n: nn.Linear(256, 256, bias=False) for n in names})
    psp["layer_norm"] = nn.LayerNorm(256, eps=1e-6)
    m = nn.ModuleDict(
        {
            "attention": att,
            "lstm_a_v": lstms,
            "psp": psp,
            "L1": nn.Linear(256, 64, bias=False),
            "L2": nn.Linear(64, 29, bias=False),
        }
    )
    if weak:
        m["linear_v"], m["W3"] = nn.Linear(512, 128), nn.Linear(29, 1, bias=False)
    else:
        m["fa"] = nn.Sequential(nn.Linear(128, 256, bias=False), nn.Linear(256, 128, bias=False))
        m["fv"] = nn.Sequential(nn.Linear(512, 256, bias=False), nn.Linear(256, 128, bias=False))
    return m


def psp_layers(weak: bool) -> nn.ModuleDict:
    m = nn.ModuleDict(
        {
            "attention": avattn.AGVA(512, 128, hidden_dim=512, attention_dim=49, audio_along_cells=True),
            "audio_lstm": avattn.BiLSTMEncoder(128, 128),
            "visual_lstm": avattn.BiLSTMEncoder(128, 128),
            "psp": avattn.PositiveSamplePropagation(256, variant="weak" if weak else "supervised"),
            "classifier": avattn.SegmentClassifier(256, 29, hidden_dim=64, bias=False),
        }
    )
    if weak:
        m["visual_projection"] = nn.Linear(512, 128)
        m["weighting"] = avattn.TemporalWeightingHead(29)
    else:  # plain linear maps, no activation in between: not layers of their own
        m["audio_projection"] = nn.Sequential(nn.Linear(128, 256, bias=False), nn.Linear(256, 128, bias=False))
        m["visual_projection"] = nn.Sequential(nn.Linear(512, 256, bias=False), nn.Linear(256, 128, bias=False))
    return m


def remap(state, key_map):
    out = {}
    for key, value in state.items():
        (prefix,) = [p for p in key_map if key.startswith(p)]
        out[key_map[prefix] + key[len(prefix) :]] = value
    return out


@pytest.mark.parametrize(
    "reference, layers, key_map, used_params",
    [
        (lambda: avel_reference_modules(False), lambda: avel_layers(False), AVEL_KEY_MAP, 1_335_246),
        (lambda: avel_reference_modules(True), lambda: avel_layers(True), AVEL_KEY_MAP, 1_571_150),
        (lambda: psp_reference_modules(False), lambda: psp_layers(False), PSP_SUPERVISED_KEY_MAP, 1_548_657),
        (lambda: psp_reference_modules(True), lambda: psp_layers(True), PSP_WEAK_KEY_MAP, 1_253_902),
    ],
    ids=["avel-att", "avel-dmrn", "psp-supervised", "psp-weak"],
)
def test_reference_keys_map_onto_layers(reference, layers, key_map, used_params):
    """Every parameter the reference's forward uses maps by a key prefix onto one layer parameter of the
    same shape, and nothing is left over on either side (strict load); counts are the references'."""
    ref_state, ours = reference().state_dict(), layers()
    assert sum(v.numel() for v in ref_state.values()) == used_params
    ours.load_state_dict(remap(ref_state, key_map), strict=True)
    for key, value in ref_state.items():
        (prefix,) = [p for p in key_map if key.startswith(p)]
        assert torch.equal(ours.state_dict()[key_map[prefix] + key[len(prefix) :]], value)


@pytest.mark.parametrize(
    "layer, inputs",
    [
        (lambda: avattn.BiLSTMEncoder(8, 4), lambda: (torch.randn(2, 3, 8, dtype=torch.float64),)),
        (lambda: avattn.DMRN(8), lambda: (torch.randn(2, 3, 8), torch.randn(2, 3, 8, dtype=torch.float64))),
        (lambda: avattn.PositiveSamplePropagation(8), lambda: (torch.randn(2, 3, 8), torch.randn(2, 3, 8).half())),
        (lambda: avattn.SegmentClassifier(8), lambda: (torch.randn(2, 3, 8, dtype=torch.float64),)),
        (lambda: avattn.TemporalWeightingHead(29), lambda: (torch.randn(2, 3, 29, dtype=torch.float64),)),
    ],
)
def test_mixed_dtypes_name_both(layer, inputs):
    with pytest.raises(TypeError, match="has dtype torch.float"):
        layer()(*inputs())
