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

Each reference model is a ``ReferenceModel`` of its model folder (``REFERENCES`` in
``examples/<model>/reference.py``): the key list shipped beside it (which keys the reference saves, their
shapes, which are used) and a key map from avattn parameter names to reference keys.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from . import registry, run_lock
from .checkpoint import (
    FORMAT,
    RUN_FILES,
    VERSION,
    CheckpointError,
    checkpoint_file,
    read_torch_file,
    rng_state,
    run_files_in,
)
from .checks import ConfigError, check_out_dir
from .config import TrainConfig
from .constants import SETTINGS
from .files import atomic_writes, json_file
from .reference_keys import PREFIX, ReferenceKey, ReferenceModel
from .runtime import python_command


def reference_models() -> dict[str, ReferenceModel]:
    """Every importable reference model, by ``--model`` name (each model folder's ``REFERENCES``)."""
    return {name: ref for fam in registry.families() for name, ref in fam.references.items()}


def reference_model(model: str) -> ReferenceModel:
    refs = reference_models()
    if model not in refs:
        raise ConfigError(f"model must be one of {tuple(refs)}, got {model!r}")
    return refs[model]


def read_reference_keys(model: str, setting: str) -> list[ReferenceKey]:
    """The keys the reference saves for ``setting``, in its order (``module.`` stripped)."""
    ref = reference_model(model)
    if ref.sections is not None and setting not in ref.sections:
        raise ConfigError(f"--model {model} has no {setting!r} reference checkpoint (settings: {tuple(ref.sections)})")
    return ref.keys(setting if ref.sections is None else ref.sections[setting])


def _fmt(shape) -> str:
    return "x".join(str(d) for d in shape) or "scalar"


def read_reference_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of a reference ``.pth.tar`` (bare or under 'state_dict'), ``module.`` stripped."""
    try:
        obj = read_torch_file(path, "reference checkpoint", how=" with weights_only=True")
    except CheckpointError as exc:
        if not getattr(exc, "pickles_code", False):
            raise
        raise CheckpointError(
            f"{exc}. If you made it yourself with the reference scripts (the AVEL and PSP scripts pickle the whole "
            "model), save its state_dict() with that code first (see docs/cmran.md, 'Reference checkpoints in'; "
            "docs/avel.md and docs/psp.md for AVEL and PSP)"
        ) from None
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
) -> tuple[object, dict[str, torch.Tensor], int]:
    """(model config, avattn state dict in ``dtype``, number of keys ignored) of a reference state dict of ``model``.

    ``state`` keys may carry the ``module.`` prefix. Raises ``CheckpointError`` naming the first used key
    that is missing, misshapen, not floating point or not finite.
    """
    ref_model = reference_model(model)
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
    cfg = ref_model.config(setting)
    key_map = ref_model.key_map(cfg)
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


def write_run(out: Path, cfg, state: dict[str, torch.Tensor], train_cfg: TrainConfig,
              imported: dict) -> None:
    """best.pt (a training checkpoint at epoch 0) + config.json; stale run files of an earlier run removed."""
    model = registry.build_model(cfg)
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
    config = {"model": cfg.to_dict(), "train": train_cfg.to_dict(), "world_size": 1,
              "parameters": registry.count_parameters(model), "imported": imported}
    atomic_writes([checkpoint_file(out / "best.pt", ckpt), json_file(out / "config.json", config)])
    for name in RUN_FILES:  # an earlier run's other files go once the new ones are in place
        if name not in ("best.pt", "config.json"):
            (out / name).unlink(missing_ok=True)


# ---- CLI ----------------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a reference state dict (.pth.tar; keys with or without 'module.')")
    p.add_argument("--setting", required=True, choices=SETTINGS, help="the script that trained it")
    p.add_argument("--model", default=registry.DEFAULT_MODEL, choices=tuple(reference_models()),
                   help="the reference's model: cmran (Xu et al.), avel (AV_att / AV_att_weak), avel-dmrn (DMRN), "
                        "psp (psp_net)")
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
                "keys_used": len({theirs for theirs, _ in reference_model(args.model).key_map(cfg).values()}),
                "keys_ignored": ignored}
    with run_lock.hold(out, "import-reference"):
        _check_out(args.out, args.overwrite)  # again, now that the folder is ours
        write_run(out, cfg, converted, train_cfg, imported)
    print(f"imported {args.checkpoint} ({args.setting} {args.model}; {imported['keys_used']} keys used, "
          f"{ignored} unused keys ignored) -> {out / 'best.pt'}")
    for what in ("evaluate", "visualize", "predict"):
        extra = {"evaluate": "", "visualize": f" --out {out / 'vis'}", "predict": f" --out {out / 'events.jsonl'}"}
        print(f"  {python_command(getattr(args, 'module', 'examples.ave'))} {what} --checkpoint {out / 'best.pt'}{extra[what]}")
    return 0


__all__ = ["convert_reference", "read_reference_checkpoint", "read_reference_keys", "reference_model",
           "reference_models", "write_run"]
