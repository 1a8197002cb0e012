"""What importing a reference implementation's checkpoint takes: its key list and a key map.

A model folder describes each reference model it can import as a ``ReferenceModel``: the key file shipped
beside it (which keys the reference saves, their shapes, which its forward pass uses), the reference
architecture as a config, and a key map from avattn parameter names to reference keys (rows of a packed
``in_proj_weight`` where one is split). ``examples.ave.import_reference`` does the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

PREFIX = "module."  # nn.DataParallel's

# avattn parameter name -> (reference key without "module.", rows of it or None for all)
KeyMap = dict[str, tuple[str, "slice | None"]]


@dataclass(frozen=True)
class ReferenceKey:
    key: str  # without the "module." prefix
    shape: tuple[int, ...]
    used: bool


@dataclass(frozen=True)
class ReferenceModel:
    """One reference model: its key list, its config, its key map."""

    keys_file: Path
    config: Callable[[str], object]  # setting -> the reference architecture as a model config
    key_map: Callable[[object], KeyMap]
    sections: Mapping[str, str] | None = None  # setting -> the key file's first column (None: the setting)

    def keys(self, section: str) -> list[ReferenceKey]:
        return read_keys(self.keys_file, section)


# The AGVA module of AVEL's public code (PSP's code reuses it): reference prefix -> avattn's AGVA names.
AGVA_KEYS = {"affine_audio.": "attention.audio_hidden.", "affine_video.": "attention.visual_hidden.",
             "affine_v.": "attention.visual_key.", "affine_g.": "attention.audio_key.", "affine_h.": "attention.score."}


def linear_keys(ours: str, theirs: str) -> KeyMap:
    return {f"{ours}.weight": (f"{theirs}.weight", None), f"{ours}.bias": (f"{theirs}.bias", None)}


def mha_keys(ours: str, theirs: str, dim: int) -> KeyMap:
    """nn.MultiheadAttention packs in_proj as rows [q; k; v]; avattn keeps q_proj and kv_proj = [k; v]."""
    out = {}
    for kind in ("weight", "bias"):
        out[f"{ours}.q_proj.{kind}"] = (f"{theirs}.in_proj_{kind}", slice(0, dim))
        out[f"{ours}.kv_proj.{kind}"] = (f"{theirs}.in_proj_{kind}", slice(dim, 3 * dim))
    return {**out, **linear_keys(f"{ours}.out_proj", f"{theirs}.out_proj")}


def relation_layer_keys(ours: str, theirs: str, attention: str, dim: int, *, ffn: bool = True) -> KeyMap:
    """An avattn RelationLayer from an nn.TransformerEncoder/DecoderLayer's attention, norms and FFN."""
    out = {**mha_keys(f"{ours}.attn", f"{theirs}.{attention}", dim), **linear_keys(f"{ours}.norm1", f"{theirs}.norm1")}
    if ffn:
        out.update(linear_keys(f"{ours}.ffn.net.0", f"{theirs}.linear1"))
        out.update(linear_keys(f"{ours}.ffn.net.3", f"{theirs}.linear2"))
        out.update(linear_keys(f"{ours}.norm2", f"{theirs}.norm2"))
    return out


def renamed_keys(prefixes: dict[str, str], keys: list[str]) -> KeyMap:
    """avattn name -> reference key for every key whose prefix the table renames (reference -> avattn)."""
    out: KeyMap = {}
    for key in keys:
        (prefix,) = [p for p in prefixes if key.startswith(p)]
        out[prefixes[prefix] + key[len(prefix):]] = (key, None)
    return out


def read_keys(path: Path, section: str) -> list[ReferenceKey]:
    """The rows of a key file whose first column is ``section``, in order (``module.`` stripped)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        row_section, key, shape, use = line.split("\t")
        if row_section == section and key != "key":
            dims = tuple(int(d) for d in shape.split("x"))
            out.append(ReferenceKey(key.removeprefix(PREFIX), dims, use == "used"))
    return out


__all__ = ["AGVA_KEYS", "PREFIX", "KeyMap", "ReferenceKey", "ReferenceModel", "linear_keys", "mha_keys", "read_keys",
           "relation_layer_keys", "renamed_keys"]
