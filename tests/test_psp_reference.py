"""PSP through ``import-reference``: a reference state dict, built here from the shipped key list (unused keys
included), becomes a run folder whose model computes what the reference code computes with those weights
(float64, eval mode), supervised and weak, on awkward shapes; and the training losses, including the
reference loader's never-cleared AVPS target buffer.

The reference forward (Zhou et al., CVPR 2021, public code) is transcribed below in plain torch on the
reference's own key names.

Axis legend: b batch, t visual segments, s audio segments, n cells (49), e model dim (256), k classes (29).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from cli_checks import one_thread  # noqa: F401  (the fixture acts where imported)
from reference_transcriptions import assert_equal_outputs_and_input_grads, bilstm

from examples.ave.evaluate import load_trained_model
from examples.ave.import_reference import read_reference_keys
from examples.cmran.__main__ import main as cli
from examples.psp.config import PSPConfig
from examples.psp.model import PSP

D = torch.float64
SHAPES = [(1, 1), (2, 7), (3, 10)]  # (B, T)
SECTIONS = {"supervised": "fully_model.psp_net", "weak": "weakly_model.psp_net"}


def reference_state(setting: str, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every key the reference saves (used or not), random weights of its shape, float32-representable."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for ref in read_reference_keys("psp", setting):
        t = torch.randn(ref.shape, generator=g, dtype=D)
        if ref.key == "psp.layer_norm.weight":
            t = 1 + 0.2 * t
        elif len(ref.shape) == 2:
            t = t / math.sqrt(ref.shape[1])
        else:
            t = 0.1 * t
        out[ref.key] = t.float().double()
    return out


# ---- the reference forward pass (eval mode: dropout off), transcribed on the reference's key names ----

def lin(x, sd, name, bias=False):
    return x @ sd[f"{name}.weight"].T + (sd[f"{name}.bias"] if bias else 0)


def agva(visual, audio, sd):
    """The AVEL attention (cell-axis audio term) over the raw cells."""
    h_v = torch.relu(lin(visual, sd, "attention.affine_video", True))
    h_a = torch.relu(lin(audio, sd, "attention.affine_audio", True))
    e = lin(h_v, sd, "attention.affine_v")  # (b, t, n, j)
    q = lin(h_a, sd, "attention.affine_g")  # (b, t, n)
    z = lin(torch.tanh(e + q.unsqueeze(-1)), sd, "attention.affine_h").squeeze(-1)
    return (torch.softmax(z, -1).unsqueeze(-1) * visual).sum(2)


def layer_norm(x, sd, eps=1e-6):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * sd["psp.layer_norm.weight"] + sd["psp.layer_norm.bias"]


def prune(beta_in, tau, renormalize):
    beta = beta_in / (beta_in.sum(-1, keepdim=True) + 1e-8)
    gamma = beta * (beta > tau).to(beta.dtype)
    return gamma / (gamma.sum(-1, keepdim=True) + 1e-8) if renormalize else gamma


def psp_reference(visual, audio, sd, setting):
    """Supervised: (logits (b, t, 29), v_psp, a_psp); weak: (P (b, 29), s' (b, t, 29))."""
    weak = setting == "weak"
    g = audio if weak else lin(lin(audio, sd, "fa.0"), sd, "fa.1")
    x = agva(visual, g, sd)
    v_in = lin(x, sd, "linear_v", True) if weak else lin(lin(x, sd, "fv.0"), sd, "fv.1")
    v, a = bilstm(v_in, sd, "lstm_a_v.lstm_video"), bilstm(g, sd, "lstm_a_v.lstm_audio")
    v1, v2 = torch.relu(lin(v, sd, "psp.v_L1")), torch.relu(lin(v, sd, "psp.v_L2"))
    a1, a2 = torch.relu(lin(a, sd, "psp.a_L1")), torch.relu(lin(a, sd, "psp.a_L2"))
    s_all = torch.relu(v2 @ a1.transpose(1, 2) / 16)  # (b, t, s), 16 = sqrt(256)
    tau = 0.095 if weak else 0.099
    gamma_va, gamma_av = prune(s_all, tau, not weak), prune(s_all.transpose(1, 2), tau, not weak)
    v_new, a_new = v + gamma_va @ a2, a + gamma_av @ v1
    if not weak:
        v_new, a_new = torch.relu(lin(v_new, sd, "psp.v_fc")), torch.relu(lin(a_new, sd, "psp.a_fc"))
    v_psp, a_psp = layer_norm(v_new, sd), layer_norm(a_new, sd)
    f = 0.5 * (v_psp + a_psp)
    logits = lin(torch.relu(lin(f, sd, "L1")), sd, "L2")
    if not weak:
        return logits, v_psp, a_psp
    w = torch.sigmoid(torch.relu(lin(logits, sd, "W3")))  # (b, t, 1)
    weighted = w * logits
    return torch.softmax(weighted.mean(1), -1), weighted


def import_run(tmp_path, state, setting):
    torch.save(state, tmp_path / f"{setting}.pt")
    out = tmp_path / f"run-{setting}"
    assert cli(["import-reference", str(tmp_path / f"{setting}.pt"), "--model", "psp", "--setting", setting,
                "--out", str(out)]) == 0
    loaded, _ = load_trained_model(str(out / "best.pt"), torch.device("cpu"))
    return loaded.double().eval()


@pytest.mark.parametrize("setting", ["supervised", "weak"])
def test_imported_model_equals_the_reference_forward(tmp_path, capsys, setting):
    state = reference_state(setting)
    ours = import_run(tmp_path, state, setting)
    unused = {"supervised": 10, "weak": 3}[setting]  # linear_v, v/a_classify, L3, L4 (10 keys) / temperature, W1, W2
    assert f"{unused} unused keys ignored" in capsys.readouterr().out
    for b, t in SHAPES:
        visual = torch.rand(b, t, 7, 7, 512, dtype=D, requires_grad=True)
        audio = torch.randn(b, t, 128, dtype=D, requires_grad=True)
        out = ours(visual, audio)
        ref = psp_reference(visual.reshape(b, t, 49, 512), audio, state, setting)
        if setting == "supervised":
            pairs = [(out.segment_logits, ref[0]), (out.visual, ref[1]), (out.audio, ref[2])]
            assert torch.equal(ours.predict(out), ref[0].argmax(-1))
        else:
            pairs = [(out.video_probs, ref[0]), (out.segment_logits, ref[1])]
            assert torch.equal(ours.predict(out), ref[1].softmax(-1).argmax(-1))
        # outputs, then gradients with respect to both inputs (the pruning mask carries none, in both)
        assert_equal_outputs_and_input_grads(pairs, (visual, audio))


def test_import_checks_used_keys_and_ignores_unused_ones(tmp_path, capsys):
    state = reference_state("supervised")
    for key in ("linear_v.weight", "linear_v.bias", "L3.weight", "L4.bias"):  # unused: absent is fine
        del state[key]
    import_run(tmp_path, state, "supervised")
    capsys.readouterr()
    del state["psp.a_fc.weight"]
    torch.save(state, tmp_path / "missing.pt")
    code = cli(["import-reference", str(tmp_path / "missing.pt"), "--model", "psp", "--setting", "supervised",
                "--out", str(tmp_path / "m")])
    assert code == 1 and "psp.a_fc.weight" in capsys.readouterr().err
    weak = reference_state("weak")
    weak["W3.weight"] = weak["W3.weight"][:, :28]
    torch.save(weak, tmp_path / "shape.pt")
    code = cli(["import-reference", str(tmp_path / "shape.pt"), "--model", "psp", "--setting", "weak",
                "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 1 and "W3.weight" in err and "1x28" in err and "1x29" in err
    # a supervised checkpoint is not a weak one: the weak model's linear_v/W3 ... are missing or unused
    torch.save(reference_state("supervised"), tmp_path / "sup.pt")
    code = cli(["import-reference", str(tmp_path / "sup.pt"), "--model", "psp", "--setting", "weak",
                "--out", str(tmp_path / "w")])
    assert code == 1 and "W3.weight" in capsys.readouterr().err


# ---- losses ----

def reference_loader_targets(batches: list[torch.Tensor]) -> list[torch.Tensor]:
    """The reference loader's AVPS targets: one (B, T) buffer, never cleared; each video writes 1/k on the
    k segments of its class (a background-only video: 1/T on every segment), leaving the rest as it was."""
    buf, out = None, []
    for labels in batches:
        b, t = labels.shape
        buf = torch.zeros(b, t, dtype=D) if buf is None else buf
        for i in range(b):
            events = [int(c) for c in labels[i] if int(c) != 28]
            cls = min(events) if events else 28
            segs = [j for j in range(t) if int(labels[i, j]) == cls]
            for j in segs:
                buf[i, j] = 1 / len(segs)
        out.append(buf.clone())
    return out


def event_labels(b, t, g):
    """AVE-like labels: one event class per video on a random run of segments, background elsewhere."""
    labels = torch.full((b, t), 28)
    for i in range(b):
        if torch.rand(1, generator=g) < 0.8:
            start = int(torch.randint(0, t, (1,), generator=g))
            end = int(torch.randint(start + 1, t + 1, (1,), generator=g))
            labels[i, start:end] = int(torch.randint(0, 28, (1,), generator=g))
    return labels


def test_supervised_loss_is_ce_plus_100_avps(tmp_path):
    model = PSP(PSPConfig(), dtype=D).eval()
    visual, audio = torch.rand(3, 10, 7, 7, 512, dtype=D), torch.randn(3, 10, 128, dtype=D)
    labels = event_labels(3, 10, torch.Generator().manual_seed(1))
    out = model(visual, audio)
    cos = F.cosine_similarity(out.visual, out.audio, dim=-1, eps=1e-12)
    p = torch.relu(cos) / (torch.relu(cos).sum(-1, keepdim=True) + 1e-8)
    y = reference_loader_targets([labels])[0]  # the first batch: the buffer is still clean
    ce = F.cross_entropy(out.segment_logits.reshape(-1, 29), labels.reshape(-1))
    torch.testing.assert_close(model.loss(out, labels, labels[:, 0]), ce + 100 * ((p - y) ** 2).mean())


def test_stale_target_buffer_follows_the_reference_loader():
    """avps_target='stale' keeps earlier batches' entries per slot, like the reference; 'clean' does not."""
    g = torch.Generator().manual_seed(0)
    batches = [event_labels(4, 10, g) for _ in range(4)]
    stale = PSP(PSPConfig(avps_target="stale"), dtype=D)
    clean = PSP(PSPConfig(), dtype=D)
    expected = reference_loader_targets(batches)
    for labels, want in zip(batches, expected):
        torch.testing.assert_close(stale.avps_targets(labels, D), want)
        torch.testing.assert_close(clean.avps_targets(labels, D).sum(-1), torch.ones(4, dtype=D))
    assert (expected[-1].sum(-1) > 1).any()  # the buffer did go stale


def test_weak_loss_is_bce_on_the_softmax_against_the_video_one_hot():
    model = PSP(PSPConfig(setting="weak"), dtype=D).eval()
    visual, audio = torch.rand(3, 4, 7, 7, 512, dtype=D), torch.randn(3, 4, 128, dtype=D)
    out = model(visual, audio)
    video = torch.tensor([3, 28, 11])
    y = F.one_hot(video, 29).to(D)
    p = out.video_probs
    expected = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    torch.testing.assert_close(model.loss(out, torch.full((3, 4), 28), video), expected)


def test_training_mode_applies_psp_dropout_only():
    """Dropout lives in PSP only: eval is deterministic, training is not; AVEL-style layers are dropout-free."""
    model = PSP(PSPConfig(), dtype=D)
    visual, audio = torch.rand(2, 10, 7, 7, 512, dtype=D), torch.randn(2, 10, 128, dtype=D)
    model.eval()
    torch.testing.assert_close(model(visual, audio).segment_logits, model(visual, audio).segment_logits)
    model.train()
    assert not torch.equal(model(visual, audio).segment_logits, model(visual, audio).segment_logits)
    model.psp.dropout.p = 0.0
    torch.testing.assert_close(model(visual, audio).segment_logits, model.eval()(visual, audio).segment_logits)
