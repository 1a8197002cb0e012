"""The reference PSP's checkpoint keys (Zhou et al.'s public code: psp_net, supervised and weak) -> avattn's names."""

from __future__ import annotations

from pathlib import Path

from examples.ave.reference_keys import AGVA_KEYS, KeyMap, ReferenceModel, read_keys, renamed_keys

from .config import PSPConfig

KEYS_FILE = Path(__file__).resolve().parent / "reference_keys.tsv"
SECTIONS = {"supervised": "fully_model.psp_net", "weak": "weakly_model.psp_net"}
_RENAMES = {**{f"attention.{k}": v for k, v in AGVA_KEYS.items()},
            "fa.": "audio_projection.", "fv.": "visual_projection.", "linear_v.": "visual_projection.",
            "lstm_a_v.lstm_audio.": "audio_lstm.", "lstm_a_v.lstm_video.": "visual_lstm.",
            "psp.v_L1.": "psp.visual_value.", "psp.v_L2.": "psp.visual_query.", "psp.a_L1.": "psp.audio_key.",
            "psp.a_L2.": "psp.audio_value.", "psp.v_fc.": "psp.visual_out.", "psp.a_fc.": "psp.audio_out.",
            "psp.layer_norm.": "psp.norm.", "L1.": "classifier.hidden.", "L2.": "classifier.output.",
            "W3.": "weighting.score_weight."}


def psp_key_map(cfg: PSPConfig) -> KeyMap:
    """PSP's names: ``fa``/``fv`` (supervised) or ``linear_v`` (weak) the projections, ``attention`` AGVA,
    ``lstm_a_v`` the BiLSTMs, ``psp`` the PSP module (``v_L1`` v1, ``v_L2`` v2, ``a_L1`` a1, ``a_L2`` a2,
    ``*_fc`` the output maps, ``layer_norm``), ``L1``/``L2`` the head, ``W3`` the weighting branch."""
    return renamed_keys(_RENAMES, [k.key for k in read_keys(KEYS_FILE, SECTIONS[cfg.setting]) if k.used])


REFERENCES = {"psp": ReferenceModel(KEYS_FILE, lambda setting: PSPConfig(setting=setting), psp_key_map, SECTIONS)}
