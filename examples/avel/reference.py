"""The reference AVEL's checkpoint keys (Tian et al.'s public code: AV_att, AV_att_weak, DMRN) -> avattn's names."""

from __future__ import annotations

from pathlib import Path

from examples.ave.reference_keys import AGVA_KEYS, KeyMap, ReferenceModel, read_keys, renamed_keys

from .config import AVELConfig

KEYS_FILE = Path(__file__).resolve().parent / "reference_keys.tsv"
SECTIONS = {"supervised": "AV_att", "weak": "AV_att_weak"}
_RENAMES = {**AGVA_KEYS, "lstm_audio.": "audio_lstm.", "lstm_video.": "visual_lstm.", "L1.": "classifier.hidden.",
            "L2.": "classifier.output.", "U_v.": "fusion.visual_transform.", "U_a.": "fusion.audio_transform."}


def avel_key_map(cfg: AVELConfig) -> KeyMap:
    """AVEL's names: ``affine_*`` AGVA (``affine_v``/``affine_g`` W_v/W_g, ``affine_h`` w), ``lstm_audio`` /
    ``lstm_video`` the BiLSTMs, ``L1``/``L2`` the head, ``U_v``/``U_a`` DMRN's transforms."""
    section = "DMRN" if cfg.model == "avel-dmrn" else SECTIONS[cfg.setting]
    return renamed_keys(_RENAMES, [k.key for k in read_keys(KEYS_FILE, section) if k.used])


REFERENCES = {
    "avel": ReferenceModel(KEYS_FILE, lambda setting: AVELConfig(setting=setting), avel_key_map, SECTIONS),
    "avel-dmrn": ReferenceModel(KEYS_FILE, lambda setting: AVELConfig(model="avel-dmrn"), avel_key_map,
                                {"supervised": "DMRN"}),
}
