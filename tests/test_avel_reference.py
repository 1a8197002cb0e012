"""AVEL through ``import-reference``: a reference state dict, built here from the shipped key list, becomes a
run folder whose model computes what the reference code computes with those weights (float64), for
A+V-att (supervised), DMRN and W-A+V-att (weak), on awkward shapes.

The reference forward (Tian et al., ECCV 2018, public code) is transcribed below in plain torch on the
reference's own key names: AGVA with the audio term added along the cell axis, two BiLSTMs from zero
states, then the concatenation head (softmax per segment), DMRN, or max-over-time MIL pooling.

Axis legend: b batch, t segments, n cells (49), j attention hidden (49), c channels, k classes (29).
"""

from __future__ import annotations

import math

import pytest
import torch
from cli_checks import one_thread  # noqa: F401  (the fixture acts where imported)
from reference_transcriptions import assert_equal_outputs_and_input_grads, bilstm

from examples.ave.evaluate import load_trained_model
from examples.ave.import_reference import convert_reference, read_reference_keys
from examples.cmran.__main__ import main as cli

D = torch.float64
SHAPES = [(1, 1), (2, 7), (3, 10)]  # (B, T): T = 1, odd T, the reference's T = 10


def reference_state(model: str, setting: str, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every key the reference saves, random float64 weights of its shape (biases small, matrices scaled)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for ref in read_reference_keys(model, setting):
        t = torch.randn(ref.shape, generator=g, dtype=D)
        out[ref.key] = t / math.sqrt(ref.shape[1]) if len(ref.shape) == 2 else 0.1 * t
    return out


# ---- the reference forward pass, transcribed on the reference's key names ----

def lin(x, sd, name, bias=True):
    return x @ sd[f"{name}.weight"].T + (sd[f"{name}.bias"] if bias else 0)


def agva(visual, audio, sd, prefix=""):
    """visual (b, t, 49, 512), audio (b, t, 128): z_i = w . tanh(P[i, :] + g[i]) (the code's cell-axis term)."""
    h_v = torch.relu(lin(visual, sd, prefix + "affine_video"))
    h_a = torch.relu(lin(audio, sd, prefix + "affine_audio"))
    p = lin(h_v, sd, prefix + "affine_v", bias=False)  # (b, t, n, j)
    g = lin(h_a, sd, prefix + "affine_g", bias=False)  # (b, t, 49): indexed by the cell
    z = lin(torch.tanh(p + g.unsqueeze(-1)), sd, prefix + "affine_h", bias=False).squeeze(-1)
    alpha = torch.softmax(z, dim=-1)
    return (alpha.unsqueeze(-1) * visual).sum(2), alpha


def avel_reference(visual, audio, sd, reference: str):
    """AV_att: (b, t, 29) softmax; DMRN: (b, t, 29) softmax; AV_att_weak: (p (b, 29), s (b, t, 29))."""
    v, _ = agva(visual, audio, sd)
    h_a, h_v = bilstm(audio, sd, "lstm_audio"), bilstm(v, sd, "lstm_video")
    if reference == "DMRN":
        m = 0.5 * (lin(torch.tanh(lin(h_v, sd, "U_v.0")), sd, "U_v.2") + lin(torch.tanh(lin(h_a, sd, "U_a.0")), sd, "U_a.2"))
        fused = 0.5 * (torch.tanh(h_a + m) + torch.tanh(h_v + m))
        return torch.softmax(lin(fused, sd, "L2"), dim=-1)
    s = lin(torch.relu(lin(torch.relu(torch.cat([h_a, h_v], -1)), sd, "L1")), sd, "L2")
    if reference == "AV_att":
        return torch.softmax(s, dim=-1)
    return torch.softmax(s.amax(dim=1), dim=-1), s


def import_run(tmp_path, state, model, setting, *, name="ckpt.pt"):
    path = tmp_path / name
    torch.save(state, path)
    out = tmp_path / f"run-{model}-{setting}"
    assert cli(["import-reference", str(path), "--model", model, "--setting", setting, "--out", str(out)]) == 0
    loaded, _ = load_trained_model(str(out / "best.pt"), torch.device("cpu"))
    return loaded.double().eval()


@pytest.mark.parametrize("model, setting, reference", [
    ("avel", "supervised", "AV_att"), ("avel-dmrn", "supervised", "DMRN"), ("avel", "weak", "AV_att_weak"),
])
def test_imported_model_equals_the_reference_forward(tmp_path, model, setting, reference):
    """The run folder holds float32 weights (the run dtype); the comparison is in float64 on those values."""
    state = {k: v.float().double() for k, v in reference_state(model, setting).items()}
    ours = import_run(tmp_path, state, model, setting)
    for b, t in SHAPES:
        visual = torch.rand(b, t, 7, 7, 512, dtype=D, requires_grad=True)  # non-negative, like pool5 maps
        audio = torch.randn(b, t, 128, dtype=D, requires_grad=True)
        out = ours(visual, audio)
        ref = avel_reference(visual.reshape(b, t, 49, 512), audio, state, reference)
        if reference == "AV_att_weak":
            pairs = [(out.video_probs, ref[0]), (out.segment_logits, ref[1])]
            assert torch.equal(ours.predict(out), ref[1].argmax(-1))
        else:
            pairs = [(out.segment_logits.softmax(-1), ref)]
            assert torch.equal(ours.predict(out), ref.argmax(-1))
        # outputs, then gradients with respect to both inputs, through every layer
        assert_equal_outputs_and_input_grads(pairs, (visual, audio))


def test_attention_map_equals_the_reference_alpha(tmp_path):
    state = {k: v.float().double() for k, v in reference_state("avel", "supervised", seed=3).items()}
    ours = import_run(tmp_path, state, "avel", "supervised")
    visual, audio = torch.rand(2, 3, 7, 7, 512, dtype=D), torch.randn(2, 3, 128, dtype=D)
    with torch.no_grad():
        _, weights = ours(visual, audio, return_weights=True)
        _, alpha = agva(visual.reshape(2, 3, 49, 512), audio, state)
    torch.testing.assert_close(weights.spatial.reshape(2, 3, 49), alpha)


def test_paper_form_of_agva_differs_from_the_code(tmp_path):
    """The cell-axis audio term matters: the paper's equation gives other maps on the same weights."""
    from examples.avel.config import AVELConfig
    from examples.avel.model import AVEL

    cfg, converted, _ = convert_reference(reference_state("avel", "supervised"), model="avel", dtype=D)
    code = AVEL(cfg, dtype=D)
    paper = AVEL(AVELConfig(agva_audio_along_cells=False), dtype=D)
    code.load_state_dict(converted)
    paper.load_state_dict(converted)
    visual, audio = torch.rand(2, 3, 7, 7, 512, dtype=D), torch.randn(2, 3, 128, dtype=D)
    with torch.no_grad():
        a, b = code(visual, audio, return_weights=True)[1].spatial, paper(visual, audio, return_weights=True)[1].spatial
    assert (a - b).abs().max() > 1e-4


def test_losses_are_the_reference_scripts(tmp_path):
    """Supervised: MultiLabelSoftMarginLoss on the softmax output (a sigmoid over a softmax), mean over all
    b*t*29 entries; weak: the same on the video prediction against the one-hot video label."""
    sup = import_run(tmp_path, reference_state("avel", "supervised"), "avel", "supervised")
    weak = import_run(tmp_path, reference_state("avel", "weak"), "avel", "weak", name="weak.pt")
    visual, audio = torch.rand(3, 5, 7, 7, 512, dtype=D), torch.randn(3, 5, 128, dtype=D)
    labels = torch.randint(0, 29, (3, 5))
    video = torch.tensor([4, 28, 0])
    probs = sup(visual, audio).segment_logits.softmax(-1)
    y = torch.nn.functional.one_hot(labels, 29).to(D)
    expected = -(y * torch.log(torch.sigmoid(probs)) + (1 - y) * torch.log(1 - torch.sigmoid(probs))).mean()
    torch.testing.assert_close(sup.loss(sup(visual, audio), labels, video), expected)
    p = weak(visual, audio).video_probs
    y = torch.nn.functional.one_hot(video, 29).to(D)
    expected = -(y * torch.log(torch.sigmoid(p)) + (1 - y) * torch.log(1 - torch.sigmoid(p))).mean()
    torch.testing.assert_close(weak.loss(weak(visual, audio), labels, video), expected)


def test_import_checks_every_used_key_and_shape(tmp_path, capsys):
    state = reference_state("avel", "supervised")
    del state["affine_h.weight"]
    torch.save(state, tmp_path / "missing.pt")
    code = cli(["import-reference", str(tmp_path / "missing.pt"), "--model", "avel", "--setting", "supervised",
                "--out", str(tmp_path / "a")])
    assert code == 1 and "affine_h.weight" in capsys.readouterr().err and not (tmp_path / "a").exists()
    state = reference_state("avel-dmrn", "supervised")
    state["U_a.2.weight"] = state["U_a.2.weight"][:, :255]
    torch.save(state, tmp_path / "shape.pt")
    code = cli(["import-reference", str(tmp_path / "shape.pt"), "--model", "avel-dmrn", "--setting", "supervised",
                "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 1 and "U_a.2.weight" in err and "256x255" in err and "256x256" in err
    # an A+V-att checkpoint is not a DMRN one: the DMRN keys are missing
    torch.save(reference_state("avel", "supervised"), tmp_path / "att.pt")
    code = cli(["import-reference", str(tmp_path / "att.pt"), "--model", "avel-dmrn", "--setting", "supervised",
                "--out", str(tmp_path / "c")])
    assert code == 1 and "U_v.0.weight" in capsys.readouterr().err


def test_module_prefix_is_stripped_and_dmrn_has_no_weak_setting(tmp_path, capsys):
    state = {"module." + k: v for k, v in reference_state("avel", "weak").items()}
    ours = import_run(tmp_path, state, "avel", "weak")
    assert torch.equal(ours.classifier.output.weight, state["module.L2.weight"].float().double())  # run dtype: fp32
    torch.save(reference_state("avel-dmrn", "supervised"), tmp_path / "dmrn.pt")
    with pytest.raises(SystemExit) as exc:
        cli(["import-reference", str(tmp_path / "dmrn.pt"), "--model", "avel-dmrn", "--setting", "weak",
             "--out", str(tmp_path / "d")])
    assert exc.value.code == 2 and "no 'weak' reference" in capsys.readouterr().err


def test_a_pickled_module_is_refused_with_the_conversion_hint(tmp_path, capsys):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")  # a whole pickled module, as the AVEL scripts save
    code = cli(["import-reference", str(tmp_path / "module.pt"), "--model", "avel", "--setting", "supervised",
                "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert code == 1 and "weights_only=True" in err and "docs/avel.md" in err
