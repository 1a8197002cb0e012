"""``import-reference``: a reference CMRAN checkpoint, built here from the shipped key list, becomes a
run folder whose model computes what the reference code computes with those weights (float64).

Axis legend: b batch, t segments, n cells, e model dim, h heads.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from cli_checks import one_thread  # noqa: F401  (the fixture acts where imported)

from examples.ave.evaluate import load_trained_model
from examples.ave.import_reference import convert_reference, read_reference_keys, reference_model
from examples.ave.registry import count_parameters
from examples.cmran.__main__ import main as cli
from examples.cmran.config import CMRANConfig
from examples.cmran.model import CMRAN


def reference_state(setting: str, *, seed: int = 0, dtype=torch.float64) -> dict[str, torch.Tensor]:
    """Every key the reference saves for ``setting`` (``module.`` prefix), random weights of its shape."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for ref in read_reference_keys("cmran", setting):
        t = torch.randn(ref.shape, generator=g, dtype=dtype)
        if ref.key.endswith("weight") and len(ref.shape) == 2:
            t = t / math.sqrt(ref.shape[1])
        elif "norm" in ref.key and ref.key.endswith("weight"):
            t = 1 + 0.2 * t
        else:
            t = 0.1 * t
        out["module." + ref.key] = t
    return out


# ---- the reference forward pass, transcribed in plain torch on the reference's own key names ----

def _lin(x, sd, name):
    return x @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]


def _ln(x, sd, name, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * sd[f"{name}.weight"] + sd[f"{name}.bias"]


def _mha(query, memory, sd, name, heads):
    """nn.MultiheadAttention: in_proj rows [q; k; v], softmax(q k^T / sqrt(d)) v per head, out_proj."""
    w, b = sd[f"{name}.in_proj_weight"], sd[f"{name}.in_proj_bias"]
    e = query.shape[-1]
    q, k, v = (x @ w[i * e:(i + 1) * e].T + b[i * e:(i + 1) * e] for i, x in enumerate((query, memory, memory)))

    def split(z):  # (b, t, e) -> (b, h, t, d)
        return z.unflatten(-1, (heads, e // heads)).transpose(1, 2)

    att = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(e // heads), -1)
    return _lin((att @ split(v)).transpose(1, 2).flatten(2), sd, f"{name}.out_proj")


def _ffn_block(x, sd, name):
    return _ln(x + _lin(torch.relu(_lin(x, sd, f"{name}.linear1")), sd, f"{name}.linear2"), sd, f"{name}.norm2")


def _encoder(feature, sd, name):  # InternalTemporalRelationModule: affine, then 2 self-attention layers
    x = _lin(feature, sd, f"{name}.affine_matrix")
    for i in range(2):
        layer = f"{name}.encoder.layers.{i}"
        x = _ffn_block(_ln(x + _mha(x, x, sd, f"{layer}.self_attn", 4), sd, f"{layer}.norm1"), sd, layer)
    return x


def _decoder(query, memory, sd, name):  # CrossModalRelationAttModule: memory [other ; query]
    q = _lin(query, sd, f"{name}.affine_matrix")
    layer = f"{name}.decoder.layers.0"
    mem = torch.cat([memory, q], 1)
    return _ffn_block(_ln(q + _mha(q, mem, sd, f"{layer}.multihead_attn", 4), sd, f"{layer}.norm1"), sd, layer)


def _agsca(v, audio, sd):  # New_Audio_Guided_Attention; v (b, t, n, c) after v_fc
    s = "spatial_channel_att"
    q1 = torch.relu(_lin(audio, sd, f"{s}.affine_audio_1"))[:, :, None]
    g = (q1 * torch.relu(_lin(v, sd, f"{s}.affine_video_1"))).mean(2)
    maps = torch.sigmoid(_lin(torch.relu(_lin(g, sd, f"{s}.affine_bottleneck")), sd, f"{s}.affine_v_c_att"))
    vc = v * (maps[:, :, None] + 1)
    q2 = torch.relu(_lin(audio, sd, f"{s}.affine_audio_2"))[:, :, None]
    x = torch.tanh(_lin(torch.relu(_lin(vc, sd, f"{s}.affine_video_2")) * q2, sd, f"{s}.affine_v_s_att"))
    return (torch.softmax(x.squeeze(-1), -1)[..., None] * vc).sum(2)


def reference_forward(sd, visual, audio, setting):
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    b, t = audio.shape[:2]
    v = _agsca(torch.relu(_lin(visual.reshape(b, t, 49, -1), sd, "v_fc")), audio, sd)
    a_o = _decoder(audio, _encoder(v, sd, "video_encoder"), sd, "audio_decoder")
    v_o = _decoder(v, _encoder(audio, sd, "audio_encoder"), sd, "video_decoder")
    f = v_o * a_o
    heads = 4 if setting == "supervised" else 2
    o = _ln(f + _mha(f, torch.cat([a_o, v_o], 1), sd, "AVInter.video_multihead", heads), sd, "AVInter.norm1")
    s = _lin(o, sd, "localize_module.classifier").squeeze(-1)
    z = _lin(o.max(1).values, sd, "localize_module.event_classifier")
    if setting == "supervised":
        return s, z
    logits = (torch.sigmoid(s)[:, :, None] * z[:, None]).max(1).values
    return s, z, logits, torch.softmax(logits, -1)


# ---- the key list and the map --------------------------------------------------------------------

@pytest.mark.parametrize("setting", ["supervised", "weak"])
def test_the_key_map_covers_exactly_the_used_keys_and_every_parameter(setting):
    keys = read_reference_keys("cmran", setting)
    used = {k.key for k in keys if k.used}
    assert len(keys) == 174 and len(used) == 106
    cfg = reference_model("cmran").config(setting)
    key_map = reference_model("cmran").key_map(cfg)
    assert {theirs for theirs, _ in key_map.values()} == used
    model = CMRAN(cfg)
    assert set(key_map) == set(model.state_dict())
    # the used keys hold exactly the parameters avattn registers (9.51 M supervised)
    shapes = {k.key: k.shape for k in keys}
    assert sum(math.prod(shapes[k]) for k in used) == count_parameters(model)


@pytest.mark.parametrize("setting", ["supervised", "weak"])
def test_imported_model_computes_the_reference_forward_in_float64(setting):
    sd = reference_state(setting, seed=1)
    cfg, state, ignored = convert_reference(sd, setting=setting, dtype=torch.float64)
    assert ignored == 174 - 106
    model = CMRAN(cfg, dtype=torch.float64).eval()
    model.load_state_dict(state)
    g = torch.Generator().manual_seed(2)
    for b, t in ((3, 10), (1, 1), (2, 7)):
        visual = torch.randn(b, t, 7, 7, 512, generator=g, dtype=torch.float64).relu()
        audio = torch.randn(b, t, 128, generator=g, dtype=torch.float64)
        with torch.no_grad():
            got = model(visual, audio)
            want = reference_forward(sd, visual, audio, setting)
        assert len(got) == len(want)
        for name, x, y in zip(got._fields, got, want):
            torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10, msg=lambda m, n=name, t=t: f"{n} (T={t}): {m}")


# ---- the command ---------------------------------------------------------------------------------

def _run(capsys, *argv):
    """(exit status, stdout, stderr) of ``python -m examples.cmran *argv``."""
    try:
        code = cli(list(argv))
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_writes_a_run_folder_that_the_other_commands_read(tmp_path, capsys):
    sd = reference_state("weak", seed=3)
    ckpt = tmp_path / "model_epoch_7_top1_0.7_task_Weakly_best_model.pth.tar"
    torch.save({"epoch": 7, "state_dict": sd}, ckpt)
    out = tmp_path / "run"
    code, stdout, _ = _run(capsys, "import-reference", str(ckpt), "--setting", "weak", "--out", str(out))
    assert code == 0
    assert "106 keys used, 68 unused keys ignored" in stdout and "predict --checkpoint" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "config.json"]
    model, loaded = load_trained_model(str(out / "best.pt"), torch.device("cpu"))
    assert model.config == CMRANConfig(setting="weak") and loaded["epoch"] == 0
    state = model.state_dict()
    assert all(v.dtype == torch.float32 for v in state.values())
    w = sd["module.audio_encoder.encoder.layers.1.self_attn.in_proj_weight"]
    torch.testing.assert_close(state["video_relation.itr.layers.1.attn.kv_proj.weight"], w[256:].float(), rtol=0, atol=0)
    assert json.loads((out / "config.json").read_text())["imported"]["keys_ignored"] == 68
    # an existing run is kept unless --overwrite
    code, _, err = _run(capsys, "import-reference", str(ckpt), "--setting", "weak", "--out", str(out))
    assert code == 2 and "already holds a run" in err
    code, _, err = _run(capsys, "import-reference", str(ckpt), "--setting", "weak", "--out", str(out / "best.pt" / "x"))
    assert code == 2 and "lies under the file" in err
    (out / "last.pt").write_bytes(b"stale")
    code, _, _ = _run(capsys, "import-reference", str(ckpt), "--setting", "weak", "--out", str(out), "--overwrite")
    assert code == 0 and not (out / "last.pt").exists()
    # predict reads it (a bare state dict without the prefix imports too)
    bare = tmp_path / "bare.pth.tar"
    torch.save({k.removeprefix("module."): v for k, v in reference_state("supervised").items()}, bare)
    code, _, _ = _run(capsys, "import-reference", str(bare), "--setting", "supervised", "--out", str(tmp_path / "sup"))
    assert code == 0
    from examples.ave.data.meta import load_meta

    meta = load_meta()
    videos = ",".join(meta.annotations[i].video_id for i in meta.orders["test"][[0, 5]])
    code, stdout, err = _run(capsys, "predict", "--checkpoint", str(tmp_path / "sup" / "best.pt"),
                             "--videos", videos, "--out", str(tmp_path / "events.jsonl"))
    assert code == 0, err
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == 2


def _expect_error(capsys, tmp_path, obj, match, *, setting="supervised", code=1):
    path = tmp_path / "bad.pth.tar"
    torch.save(obj, path)
    got, _, err = _run(capsys, "import-reference", str(path), "--setting", setting, "--out", str(tmp_path / "r"))
    assert got == code, err
    assert match in err, err
    assert not (tmp_path / "r" / "best.pt").exists()


def test_a_missing_used_key_is_named_and_unused_ones_are_counted(tmp_path, capsys):
    sd = reference_state("supervised")
    del sd["module.video_decoder.decoder.layers.0.norm2.bias"]
    del sd["module.video_decoder.decoder_layer.norm2.bias"]  # unused: not needed
    sd["module.some_extra.weight"] = torch.zeros(3)
    _expect_error(capsys, tmp_path, sd, "lacks 'module.video_decoder.decoder.layers.0.norm2.bias' (shape 256), "
                  "which the supervised cmran forward pass uses (68 unused keys ignored)")


def test_a_misshapen_key_is_named(tmp_path, capsys):
    # a weak checkpoint (29-way classifier) imported as supervised
    _expect_error(capsys, tmp_path, reference_state("weak"),
                  "'module.localize_module.event_classifier.weight' has shape 29x256, expected 28x256")


def test_non_finite_or_non_float_weights_are_refused(tmp_path, capsys):
    sd = reference_state("supervised")
    sd["module.v_fc.bias"][3] = float("nan")
    _expect_error(capsys, tmp_path, sd, "'module.v_fc.bias' holds non-finite values")
    sd = reference_state("supervised")
    sd["module.v_fc.bias"] = sd["module.v_fc.bias"].long()
    _expect_error(capsys, tmp_path, sd, "'module.v_fc.bias' has dtype torch.int64")


def test_files_that_are_not_state_dicts_are_refused_without_unpickling(tmp_path, capsys):
    _expect_error(capsys, tmp_path, [1, 2, 3], "holds neither a state dict nor a dict with a 'state_dict' entry")
    _expect_error(capsys, tmp_path, torch.nn.Linear(2, 2), "could not be read with weights_only=True")
    got, _, err = _run(capsys, "import-reference", str(tmp_path / "nope.pth.tar"), "--setting", "weak",
                       "--out", str(tmp_path / "r"))
    assert got == 1 and "does not exist" in err
