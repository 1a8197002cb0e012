"""Reference checkpoints in: a ``.pth.tar`` of the paper's public code -> an avattn run folder.

    python -m examples.cmran import-reference model_epoch_..._best_model.pth.tar --setting supervised --out runs/ref
    python -m examples.cmran import-reference AV_att.state_dict --model avel --setting supervised --out runs/avel
    python -m examples.cmran evaluate --checkpoint runs/ref/best.pt --data /data/AVE

``--model``: cmran (Xu et al.'s CMRAN), avel (Tian et al.'s ``AV_att`` / ``AV_att_weak``), avel-dmrn
(``DMRN``), psp (Zhou et al.'s ``psp_net``, supervised and weak). The AVEL and PSP scripts save whole
pickled modules (no ``module.`` prefix): convert them to state dicts with the one-liner below.

The reference's training scripts save ``model.state_dict()`` of an ``nn.DataParallel``-wrapped
float64 model (keys prefixed ``module.``); a dict holding it under ``'state_dict'`` is read too.
The file is read with ``torch.load(weights_only=True)``: nothing is unpickled. A checkpoint that
pickles the whole module must first be turned into a state dict with the reference code on the
path (run from its repository):

    python -c "import torch; torch.save(torch.load('CKPT', map_location='cpu', weights_only=False).state_dict(), 'CKPT.state_dict')"

Every key the forward pass uses must be present with its shape (the first missing or misshapen key
is named); keys the forward pass never reads (template layers kept alive by deep copies, an unused
decoder self-attention, unused AGSCA layers) are ignored and counted. The weights are converted to
the run's dtype (float32) and written as ``best.pt`` + ``config.json``, which ``evaluate``,
``visualize`` and ``predict`` read like a trained run's.

Each reference model is a ``ReferenceModel``: the key list shipped beside this file (which keys the
reference saves, their shapes, which are used) and a key map from avattn parameter names to
reference keys (rows of a packed ``in_proj_weight`` where one is split).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from .avel import AVELConfig
from .checkpoint import (
    FORMAT,
    RUN_FILES,
    VERSION,
    CheckpointError,
    rng_state,
    run_files_in,
    save_checkpoint,
    write_json,
)
from .config import SETTINGS, ConfigError, ModelConfig, TrainConfig, check_out_dir
from .model import count_parameters
from .models import AnyConfig, build_model
from .psp import PSPConfig

HERE = Path(__file__).resolve().parent
PREFIX = "module."

# avattn parameter name -> (reference key without "module.", rows of it or None for all)
KeyMap = dict[str, tuple[str, "slice | None"]]


@dataclass(frozen=True)
class ReferenceKey:
    key: str  # without the "module." prefix
    shape: tuple[int, ...]
    used: bool


@dataclass(frozen=True)
class ReferenceModel:
    """What importing one reference model takes: its key list, its config, its key map."""

    keys_file: Path
    config: Callable[[str], AnyConfig]  # setting -> the reference architecture as a model config
    key_map: Callable[[AnyConfig], KeyMap]
    sections: Mapping[str, str] | None = None  # setting -> the key file's first column (None: the setting)


def _linear(ours: str, theirs: str) -> KeyMap:
    return {f"{ours}.weight": (f"{theirs}.weight", None), f"{ours}.bias": (f"{theirs}.bias", None)}


def _mha(ours: str, theirs: str, dim: int) -> KeyMap:
    """nn.MultiheadAttention packs in_proj as rows [q; k; v]; avattn keeps q_proj and kv_proj = [k; v]."""
    out = {}
    for kind in ("weight", "bias"):
        out[f"{ours}.q_proj.{kind}"] = (f"{theirs}.in_proj_{kind}", slice(0, dim))
        out[f"{ours}.kv_proj.{kind}"] = (f"{theirs}.in_proj_{kind}", slice(dim, 3 * dim))
    return {**out, **_linear(f"{ours}.out_proj", f"{theirs}.out_proj")}


def _relation_layer(ours: str, theirs: str, attention: str, dim: int, *, ffn: bool = True) -> KeyMap:
    out = {**_mha(f"{ours}.attn", f"{theirs}.{attention}", dim), **_linear(f"{ours}.norm1", f"{theirs}.norm1")}
    if ffn:
        out.update(_linear(f"{ours}.ffn.net.0", f"{theirs}.linear1"))
        out.update(_linear(f"{ours}.ffn.net.3", f"{theirs}.linear2"))
        out.update(_linear(f"{ours}.norm2", f"{theirs}.norm2"))
    return out


def cmran_key_map(cfg: ModelConfig) -> KeyMap:
    """The reference CMRAN's names: ``v_fc`` the visual pre-projection; ``spatial_channel_att`` AGSCA;
    ``video_encoder`` / ``audio_encoder`` the ITR of the visual / audio stream (the memory of the other
    modality's query); ``audio_decoder`` / ``video_decoder`` the audio / visual branch's CMRA
    (``affine_matrix`` its query projection); ``AVInter`` the AV interaction; ``localize_module`` the
    heads (``classifier`` relevance, ``event_classifier`` category)."""
    e = cfg.d_model
    agsca = "spatial_channel_att"
    out: KeyMap = {
        **_linear("visual_proj.0", "v_fc"),
        **_linear("visual_attention.channel.audio_proj", f"{agsca}.affine_audio_1"),
        **_linear("visual_attention.channel.visual_proj", f"{agsca}.affine_video_1"),
        **_linear("visual_attention.channel.squeeze", f"{agsca}.affine_bottleneck"),
        **_linear("visual_attention.channel.excite", f"{agsca}.affine_v_c_att"),
        **_linear("visual_attention.spatial.visual_proj", f"{agsca}.affine_video_2"),
        **_linear("visual_attention.spatial.audio_proj", f"{agsca}.affine_audio_2"),
        **_linear("visual_attention.spatial.score", f"{agsca}.affine_v_s_att"),
        **_relation_layer("interaction.relation", "AVInter", "video_multihead", e, ffn=False),
        **_linear("head.relevance", "localize_module.classifier"),
        **_linear("head.classifier", "localize_module.event_classifier"),
    }
    for branch, query, memory in (("audio_relation", "audio", "video"), ("video_relation", "video", "audio")):
        out.update(_linear(f"{branch}.query_proj", f"{query}_decoder.affine_matrix"))
        out.update(_relation_layer(f"{branch}.relation", f"{query}_decoder.decoder.layers.0", "multihead_attn", e))
        out.update(_linear(f"{branch}.itr.proj", f"{memory}_encoder.affine_matrix"))
        for i in range(cfg.itr_layers):
            out.update(_relation_layer(f"{branch}.itr.layers.{i}", f"{memory}_encoder.encoder.layers.{i}",
                                       "self_attn", e))
    return out


def _rename(prefixes: dict[str, str], keys: list[str]) -> KeyMap:
    """avattn name -> reference key for every key whose prefix the table renames (reference -> avattn)."""
    out: KeyMap = {}
    for key in keys:
        (prefix,) = [p for p in prefixes if key.startswith(p)]
        out[prefixes[prefix] + key[len(prefix):]] = (key, None)
    return out


_AGVA = {"affine_audio.": "attention.audio_hidden.", "affine_video.": "attention.visual_hidden.",
         "affine_v.": "attention.visual_key.", "affine_g.": "attention.audio_key.", "affine_h.": "attention.score."}
_AVEL = {**_AGVA, "lstm_audio.": "audio_lstm.", "lstm_video.": "visual_lstm.", "L1.": "classifier.hidden.",
         "L2.": "classifier.output.", "U_v.": "fusion.visual_transform.", "U_a.": "fusion.audio_transform."}
_PSP = {**{f"attention.{k}": v for k, v in _AGVA.items()},
        "fa.": "audio_projection.", "fv.": "visual_projection.", "linear_v.": "visual_projection.",
        "lstm_a_v.lstm_audio.": "audio_lstm.", "lstm_a_v.lstm_video.": "visual_lstm.",
        "psp.v_L1.": "psp.visual_value.", "psp.v_L2.": "psp.visual_query.", "psp.a_L1.": "psp.audio_key.",
        "psp.a_L2.": "psp.audio_value.", "psp.v_fc.": "psp.visual_out.", "psp.a_fc.": "psp.audio_out.",
        "psp.layer_norm.": "psp.norm.", "L1.": "classifier.hidden.", "L2.": "classifier.output.",
        "W3.": "weighting.score_weight."}
AVEL_SECTIONS = {"supervised": "AV_att", "weak": "AV_att_weak"}
PSP_SECTIONS = {"supervised": "fully_model.psp_net", "weak": "weakly_model.psp_net"}


def avel_key_map(cfg: AVELConfig) -> KeyMap:
    """AVEL's names: ``affine_*`` AGVA (``affine_v``/``affine_g`` W_v/W_g, ``affine_h`` w), ``lstm_audio`` /
    ``lstm_video`` the BiLSTMs, ``L1``/``L2`` the head, ``U_v``/``U_a`` DMRN's transforms."""
    section = "DMRN" if cfg.model == "avel-dmrn" else AVEL_SECTIONS[cfg.setting]
    return _rename(_AVEL, [k.key for k in _read_keys(HERE / "reference_keys_avel.tsv", section) if k.used])


def psp_key_map(cfg: PSPConfig) -> KeyMap:
    """PSP's names: ``fa``/``fv`` (supervised) or ``linear_v`` (weak) the projections, ``attention`` AGVA,
    ``lstm_a_v`` the BiLSTMs, ``psp`` the PSP module (``v_L1`` v1, ``v_L2`` v2, ``a_L1`` a1, ``a_L2`` a2,
    ``*_fc`` the output maps, ``layer_norm``), ``L1``/``L2`` the head, ``W3`` the weighting branch."""
    return _rename(_PSP, [k.key for k in _read_keys(HERE / "reference_keys_psp.tsv", PSP_SECTIONS[cfg.setting])
                          if k.used])


REFERENCE_MODELS: dict[str, ReferenceModel] = {
    "cmran": ReferenceModel(HERE / "reference_keys_cmran.tsv", lambda setting: ModelConfig(setting=setting),
                            cmran_key_map),
    "avel": ReferenceModel(HERE / "reference_keys_avel.tsv", lambda setting: AVELConfig(setting=setting),
                           avel_key_map, AVEL_SECTIONS),
    "avel-dmrn": ReferenceModel(HERE / "reference_keys_avel.tsv", lambda setting: AVELConfig(model="avel-dmrn"),
                                avel_key_map, {"supervised": "DMRN"}),
    "psp": ReferenceModel(HERE / "reference_keys_psp.tsv", lambda setting: PSPConfig(setting=setting),
                          psp_key_map, PSP_SECTIONS),
}


def _read_keys(path: Path, section: str) -> list[ReferenceKey]:
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


def read_reference_keys(model: str, setting: str) -> list[ReferenceKey]:
    """The keys the reference saves for ``setting``, in its order (``module.`` stripped)."""
    ref = REFERENCE_MODELS[model]
    if ref.sections is not None and setting not in ref.sections:
        raise ConfigError(f"--model {model} has no {setting!r} reference checkpoint (settings: {tuple(ref.sections)})")
    return _read_keys(ref.keys_file, setting if ref.sections is None else ref.sections[setting])


def _fmt(shape) -> str:
    return "x".join(str(d) for d in shape) or "scalar"


def read_reference_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of a reference ``.pth.tar`` (bare or under 'state_dict'), ``module.`` stripped."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"reference checkpoint {str(path)!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(
            f"reference checkpoint {str(path)!r} could not be read with weights_only=True ({type(exc).__name__}: "
            f"{first}). If it pickles the whole model, save its state_dict() with the reference code first "
            "(see docs/cmran.md, 'Reference checkpoints in'; docs/avel.md and docs/psp.md for AVEL and PSP)"
        ) from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        found = [str(k) for k in obj][:5] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"reference checkpoint {str(path)!r} holds neither a state dict nor a dict with a 'state_dict' entry "
            f"(found {found})"
        )
    return {k.removeprefix(PREFIX): v for k, v in obj.items()}


def convert_reference(
    state: Mapping[str, torch.Tensor], *, model: str = "cmran", setting: str = "supervised",
    dtype: torch.dtype = torch.float32, source: str = "the reference checkpoint",
) -> tuple[ModelConfig, dict[str, torch.Tensor], int]:
    """(model config, avattn state dict in ``dtype``, number of keys ignored) of a reference state dict of ``model``.

    ``state`` keys may carry the ``module.`` prefix. Raises ``CheckpointError`` naming the first used key
    that is missing, misshapen, not floating point or not finite.
    """
    if model not in REFERENCE_MODELS:
        raise ConfigError(f"model must be one of {tuple(REFERENCE_MODELS)}, got {model!r}")
    if setting not in SETTINGS:
        raise ConfigError(f"setting must be one of {SETTINGS}, got {setting!r}")
    state = {k.removeprefix(PREFIX): v for k, v in state.items()}
    listed = read_reference_keys(model, setting)
    used = [k for k in listed if k.used]
    ignored = len(set(state) - {k.key for k in used})
    for ref in used:
        name = PREFIX + ref.key
        if ref.key not in state:
            raise CheckpointError(
                f"{source} lacks {name!r} (shape {_fmt(ref.shape)}), which the {setting} {model} forward pass uses "
                f"({ignored} unused keys ignored); was it saved by the {setting} script?"
            )
        t = state[ref.key]
        if tuple(t.shape) != ref.shape:
            raise CheckpointError(
                f"{source}: {name!r} has shape {_fmt(t.shape)}, expected {_fmt(ref.shape)} "
                f"(the {setting} {model}; {ignored} unused keys ignored)"
            )
        if not t.is_floating_point():
            raise CheckpointError(f"{source}: {name!r} has dtype {t.dtype}, expected floating point weights")
        if not torch.isfinite(t).all():
            raise CheckpointError(f"{source}: {name!r} holds non-finite values (NaN or inf)")
    cfg = REFERENCE_MODELS[model].config(setting)
    key_map = REFERENCE_MODELS[model].key_map(cfg)
    converted = {}
    for ours, (theirs, rows) in key_map.items():
        t = state[theirs] if rows is None else state[theirs][rows]
        converted[ours] = t.detach().to(dtype=dtype, copy=True).contiguous()
    return cfg, converted, ignored


def _check_out(out: str, overwrite: bool) -> None:
    check_out_dir(out)
    held = run_files_in(out)
    if held and not overwrite:
        raise ConfigError(f"--out {out!r} already holds a run ({', '.join(held)}); pass --overwrite to "
                          "replace it, or choose another --out")


def write_run(out: Path, cfg: AnyConfig, state: dict[str, torch.Tensor], train_cfg: TrainConfig,
              imported: dict) -> None:
    """best.pt (a training checkpoint at epoch 0) + config.json; stale run files of an earlier run removed."""
    model = build_model(cfg)
    model.load_state_dict(state)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(train_cfg.lr_milestones), gamma=train_cfg.lr_gamma)
    ckpt = {
        "format": FORMAT, "version": VERSION, "model_config": cfg.to_dict(), "train_config": train_cfg.to_dict(),
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": torch.amp.GradScaler("cpu", enabled=False).state_dict(),
        "rng": [rng_state(torch.Generator().manual_seed(train_cfg.seed))], "epoch": 0, "best_val": -1.0,
        "best_epoch": 0, "history": [], "world_size": 1, "imported": imported,
    }
    out.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if name not in ("best.pt", "config.json"):
            (out / name).unlink(missing_ok=True)
    save_checkpoint(out / "best.pt", ckpt)
    write_json(out / "config.json", {"model": cfg.to_dict(), "train": train_cfg.to_dict(), "world_size": 1,
                                     "parameters": count_parameters(model), "imported": imported})


# ---- CLI ----------------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a reference state dict (.pth.tar; keys with or without 'module.')")
    p.add_argument("--setting", required=True, choices=SETTINGS, help="the script that trained it")
    p.add_argument("--model", default="cmran", choices=tuple(REFERENCE_MODELS),
                   help="cmran (default), avel (AV_att / AV_att_weak), avel-dmrn (DMRN), psp (psp_net)")
    p.add_argument("--out", required=True, help="the run folder to write (best.pt, config.json)")
    p.add_argument("--data", default="synthetic",
                   help="the data that evaluate/visualize/predict use by default: the AVE release directory "
                        "(default: synthetic)")
    p.add_argument("--overwrite", action="store_true", help="replace the run an --out holds")


def main(args: argparse.Namespace) -> int:
    _check_out(args.out, args.overwrite)  # the string: Path("") would be "."
    out = Path(args.out)
    read_reference_keys(args.model, args.setting)  # a setting the model has
    train_cfg = TrainConfig(data=args.data, out=str(out)).resolve(args.setting, args.model)  # validates --data
    state = read_reference_checkpoint(args.checkpoint)
    cfg, converted, ignored = convert_reference(state, model=args.model, setting=args.setting,
                                                source=f"reference checkpoint {args.checkpoint!r}")
    imported = {"from": os.path.abspath(args.checkpoint), "model": args.model, "setting": args.setting,
                "keys_used": len({theirs for theirs, _ in REFERENCE_MODELS[args.model].key_map(cfg).values()}),
                "keys_ignored": ignored}
    write_run(out, cfg, converted, train_cfg, imported)
    print(f"imported {args.checkpoint} ({args.setting} {args.model}; {imported['keys_used']} keys used, "
          f"{ignored} unused keys ignored) -> {out / 'best.pt'}")
    for what in ("evaluate", "visualize", "predict"):
        extra = {"evaluate": "", "visualize": f" --out {out / 'vis'}", "predict": f" --out {out / 'events.jsonl'}"}
        print(f"  python -m examples.cmran {what} --checkpoint {out / 'best.pt'}{extra[what]}")
    return 0


__all__ = ["REFERENCE_MODELS", "ReferenceModel", "cmran_key_map", "convert_reference", "read_reference_checkpoint",
           "read_reference_keys", "write_run"]
