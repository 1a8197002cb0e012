"""The AVEL and PSP reference implementations' state-dict keys map one to one onto avattn layers.

The reference models' parameter-holding modules are built here in plain torch under their own names; the
prefix maps are written out here (the example's own are ``_RENAMES`` in examples/avel and examples/psp
``reference.py``).
"""

import pytest
import torch
import torch.nn as nn

import avattn


def agva_reference_modules() -> dict[str, nn.Module]:
    """The audio-guided visual attention: the same modules under the same names in both references."""
    return {
        "affine_audio": nn.Linear(128, 512),
        "affine_video": nn.Linear(512, 512),
        "affine_v": nn.Linear(512, 49, bias=False),
        "affine_g": nn.Linear(512, 49, bias=False),
        "affine_h": nn.Linear(49, 1, bias=False),
    }


def avel_reference_modules(dmrn: bool) -> nn.ModuleDict:
    """The AVEL reference models' parameter-holding modules, built with plain torch under their own names."""
    m = nn.ModuleDict(
        {
            "lstm_audio": nn.LSTM(128, 128, 1, batch_first=True, bidirectional=True),
            "lstm_video": nn.LSTM(512, 128, 1, batch_first=True, bidirectional=True),
            **agva_reference_modules(),
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
    att = nn.ModuleDict(agva_reference_modules())
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
