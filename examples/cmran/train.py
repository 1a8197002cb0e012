"""Train CMRAN (or AVEL, AVEL-DMRN, PSP: ``--model``) on AVE (real or synthetic), one process or many
(torchrun), in one readable file.

    python -m examples.cmran train --data synthetic --epochs 3 --out runs/demo
    python -m examples.cmran train --model psp --setting weak --epochs 3 --out runs/psp-weak
    torchrun --nproc_per_node 4 -m examples.cmran train --data /data/AVE --out runs/ave

Axis legend: b batch (videos), t segments.

What it does, in order: validate the options; set up DDP if RANK/WORLD_SIZE are set (gloo on
CPU, nccl on GPU); seed; build the data (DistributedSampler over the train split), the model
(print its parameter count), Adam + MultiStepLR + GradScaler; resume if asked; then per epoch:
train with AMP and gradient-norm clipping, stop cleanly on a non-finite loss, score val, write
last.pt (and best.pt when val improves, or per ``--select-on``) atomically, log one line and
metrics.jsonl. At the end the best checkpoint's test accuracy is reported once and written to result.json.
Each model's recipe defaults (epochs, batch, lr and its schedule, clipping) are its reference's
(``config.RECIPES``).

--batch-size is the global batch: each of the N processes takes batch/N videos per step, so a
run's recipe (and its result) does not depend on how many processes share it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import random
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from .amp import resolve_amp
from .avel import AVEL_LOSSES, AVEL_VARIANTS, MIL_POOLINGS, AVELConfig
from .checkpoint import (
    FORMAT,
    RUN_FILES,
    VERSION,
    CheckpointError,
    atomic_write,
    check_finite,
    check_resumable,
    load_checkpoint,
    load_model_state,
    remove_stale_temp_files,
    rng_state,
    run_files_in,
    save_checkpoint,
    set_rng_state,
    write_json,
    write_jsonl,
)
from .config import (
    ADAM_IMPLS,
    AMP_MODES,
    ARCHS,
    DROPOUT_IMPLS,
    INITS,
    LR_UNITS,
    SELECTIONS,
    VISUAL_ATTENTIONS,
    VISUAL_DIMS,
    WEAK_LOSS_INPUTS,
    ConfigError,
    ModelConfig,
    TrainConfig,
    check_out_dir,
)
from .evaluate import autocast, build_splits, evaluate_accuracy, resolve_device, to_device
from .model import count_parameters
from .models import MODELS, build_model, describe, model_name
from .optim import clip_gradients, make_adam, set_adam_impl
from .psp import AVPS_TARGETS, PSPConfig

CMRA_CHOICES = ("cmra", "none", "self", "co", "feature_concat")
INTERACTION_CHOICES = ("cmra", "none", "self")


def add_arguments(p: argparse.ArgumentParser) -> None:
    d, m = TrainConfig(), ModelConfig()
    g = p.add_argument_group("data")
    g.add_argument("--setting", default="supervised", choices=("supervised", "weak"))
    g.add_argument("--data", default=d.data, help="'synthetic' or the AVE release directory")
    g.add_argument("--features", default="vgg19", choices=tuple(VISUAL_DIMS))
    g.add_argument("--difficulty", type=float, default=None, help="synthetic data difficulty (default: the generator's)")
    g.add_argument("--data-seed", type=int, default=None, help="seed of the synthetic data set (default 0)")
    g.add_argument("--subset", type=int, default=None, help="use only the first N videos of each split (smoke tests)")
    g.add_argument("--num-workers", type=int, default=d.num_workers)

    g = p.add_argument_group("recipe (defaults: the chosen model's reference implementation, config.RECIPES)")
    g.add_argument("--epochs", type=int, default=None, help="default 200 (cmran), 300 (avel; weak 250), 300 (psp)")
    g.add_argument("--batch-size", type=int, default=None,
                   help="global batch, split over DDP processes (default 32 cmran, 64 avel, 128 psp)")
    g.add_argument("--lr", type=float, default=None, help="Adam lr (default 5e-4 cmran, 1e-3 avel and psp)")
    g.add_argument("--lr-milestones", default=None,
                   help="comma-separated epochs or steps (--lr-unit) at which the lr is multiplied by --lr-gamma "
                        "(default cmran 10,20,30 / weak 5,20,40; avel step 14999; psp 60,120 / weak 80,160)")
    g.add_argument("--lr-gamma", type=float, default=None, help="default 0.5 cmran, 0.1 avel, 0.8 psp")
    g.add_argument("--lr-unit", default=None, choices=LR_UNITS, help="what --lr-milestones count (default: step "
                                                                     "for avel, epoch otherwise)")
    g.add_argument("--grad-clip", type=float, default=None,
                   help="gradient-norm clip (default cmran 0.1 supervised / 0.5 weak; avel and psp 0 = off)")
    g.add_argument("--no-shuffle", action="store_true",
                   help="keep the stored training order in fixed batches every epoch (the AVEL scripts' practice)")
    g.add_argument("--select-on", default="val", choices=SELECTIONS,
                   help="the split whose accuracy picks best.pt (test: the PSP scripts' practice; last: the last epoch)")
    g.add_argument("--seed", type=int, default=d.seed, help="model init, dropout and data order")
    g.add_argument("--max-steps", type=int, default=None, help="at most this many steps per epoch (tiny runs)")
    g.add_argument("--eval-batch-size", type=int, default=d.eval_batch_size)
    g.add_argument("--adam-impl", default=d.adam_impl, choices=ADAM_IMPLS,
                   help="torch's Adam implementation, same update rule (default fused; 'for': torch's CPU default)")

    g = p.add_argument_group("model")
    g.add_argument("--model", default="cmran", choices=MODELS,
                   help="cmran (default), avel (Tian et al. 2018, A+V-att), avel-dmrn (its DMRN), psp (Zhou et al. 2021)")
    g.add_argument("--dropout", type=float, default=None, help="cmran: dropout in the relation layers; psp: "
                                                               "PSP's dropout (default 0.1 both; avel has none)")

    g = p.add_argument_group("CMRAN ablations (CMRAN paper, Tables 3-5; --model cmran only)")
    g.add_argument("--arch", default=None, choices=ARCHS, help="the full model or a baseline (default cmran)")
    g.add_argument("--cmra", default=None, choices=CMRA_CHOICES, help="relation-aware module variant (default cmra)")
    g.add_argument("--visual-attention", default=None, choices=VISUAL_ATTENTIONS, help="default agsca")
    g.add_argument("--interaction", default=None, choices=INTERACTION_CHOICES, help="AV interaction (default cmra)")
    g.add_argument("--itr-layers", type=int, default=None, help="ITR depth L (default 2)")
    g.add_argument("--interaction-heads", type=int, default=None, help="default 4 supervised / 2 weak")
    g.add_argument("--dropout-impl", default=None, choices=DROPOUT_IMPLS,
                   help=f"relation-layer dropout masks: bit (BitDropout, default {m.dropout_impl}: same distribution, "
                        "cheaper) or torch (nn.Dropout, the reference's); the random draws differ")
    g.add_argument("--visual-dropout", type=float, default=None, help="dropout after the visual pre-projection (default 0.2)")
    g.add_argument("--no-visual-proj", action="store_true", help="drop the Linear(C_v,512)+ReLU+Dropout pre-projection")
    g.add_argument("--agva-audio-along-cells", action="store_true", help="AVEL's AGVA code quirk")
    g.add_argument("--weak-loss-on", default=None, choices=WEAK_LOSS_INPUTS, help="weak loss input (reference: scores)")
    g.add_argument("--backend", default=None, choices=("auto", "reference", "sdpa", "triton"), help="default auto")
    g.add_argument("--init", default=None, choices=INITS,
                   help="reference: each ITR's stacked layers start identical, as in the reference code")

    g = p.add_argument_group("AVEL options (--model avel / avel-dmrn; docs/avel.md)")
    g.add_argument("--avel-variant", default=None, choices=AVEL_VARIANTS,
                   help="the paper's row: av_att (the reference's, default); reconstructions av, v_att, v, a")
    g.add_argument("--agva-paper", action="store_true",
                   help="AGVA as the paper writes it, not the code's cell-axis audio term")
    g.add_argument("--mil-pooling", default=None, choices=MIL_POOLINGS, help="weak: max over segments (the code, "
                                                                             "default) or mean (the paper)")
    g.add_argument("--avel-loss", default=None, choices=AVEL_LOSSES,
                   help="reference (MultiLabelSoftMargin on the softmax, default) or cross_entropy (the paper)")
    g.add_argument("--dmrn-blocks", type=int, default=None, help="avel-dmrn: DMRN blocks (default 1)")
    g.add_argument("--dmrn-own-residuals", action="store_true",
                   help="avel-dmrn: each modality keeps its own residual beyond one block (the code swaps them)")

    g = p.add_argument_group("PSP options (--model psp; docs/psp.md)")
    g.add_argument("--psp-threshold", type=float, default=None, help="pruning threshold tau (default 0.099 / weak 0.095)")
    g.add_argument("--avps-weight", type=float, default=None, help="supervised: weight of the AVPS loss (default 100)")
    g.add_argument("--avps-target", default=None, choices=AVPS_TARGETS,
                   help="supervised: clean per-video targets (default) or stale (the reference loader's uncleared buffer)")

    g = p.add_argument_group("run")
    g.add_argument("--out", default=d.out, help="run directory: config.json, metrics.jsonl, last.pt, best.pt, result.json")
    g.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="continue from OUT/last.pt (or the given checkpoint)")
    g.add_argument("--overwrite", action="store_true", help="start afresh in an --out that holds a run")
    g.add_argument("--amp", default=d.amp, choices=AMP_MODES, help="autocast dtype (fp16 uses a GradScaler); "
                   "auto: bf16 where the device has native bf16 products (CUDA, AVX512-BF16/AMX CPUs), else none")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--tf32", action="store_true", help="CUDA: fp32 matrix products on TF32 tensor cores (off: exact fp32)")
    g.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:N, mps")
    # Testing aid, hidden: make the loss NaN at this (1-based, whole-run) step.
    g.add_argument("--debug-nan-at-step", type=int, default=None, help=argparse.SUPPRESS)
    # Testing aid, hidden: a finite loss whose gradient is NaN at this step.
    g.add_argument("--debug-nan-grad-at-step", type=int, default=None, help=argparse.SUPPRESS)
    # Testing aid, hidden: save every step's global batch (dataset indices) and all-reduced gradient here.
    g.add_argument("--debug-grads-out", default=None, help=argparse.SUPPRESS)


# Options of one model family: (attribute, flag, the value that means "not given").
_FAMILY_OPTIONS = {
    "cmran": [("arch", "--arch", None), ("cmra", "--cmra", None), ("visual_attention", "--visual-attention", None),
              ("interaction", "--interaction", None), ("itr_layers", "--itr-layers", None),
              ("interaction_heads", "--interaction-heads", None), ("visual_dropout", "--visual-dropout", None),
              ("no_visual_proj", "--no-visual-proj", False), ("agva_audio_along_cells", "--agva-audio-along-cells", False),
              ("weak_loss_on", "--weak-loss-on", None), ("backend", "--backend", None), ("init", "--init", None),
              ("dropout_impl", "--dropout-impl", None)],
    "avel": [("avel_variant", "--avel-variant", None), ("agva_paper", "--agva-paper", False),
             ("mil_pooling", "--mil-pooling", None), ("avel_loss", "--avel-loss", None),
             ("dmrn_blocks", "--dmrn-blocks", None), ("dmrn_own_residuals", "--dmrn-own-residuals", False)],
    "psp": [("psp_threshold", "--psp-threshold", None), ("avps_weight", "--avps-weight", None),
            ("avps_target", "--avps-target", None)],
}


def model_config_from_args(args: argparse.Namespace) -> ModelConfig | AVELConfig | PSPConfig:
    """The validated model config of ``--model``; options of another model are refused."""
    family = {"avel-dmrn": "avel"}.get(args.model, args.model)
    for other, options in _FAMILY_OPTIONS.items():
        given = [flag for name, flag, unset in options if getattr(args, name, unset) != unset]
        if other != family and given:
            raise ConfigError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to --model "
                              f"{'avel/avel-dmrn' if other == 'avel' else other} only, not --model {args.model}")
    if args.model == "cmran":
        return ModelConfig(
            setting=args.setting, features=args.features, arch=args.arch or "cmran", cmra=args.cmra,
            visual_attention=args.visual_attention, interaction=args.interaction, itr_layers=args.itr_layers,
            interaction_heads=args.interaction_heads, dropout=0.1 if args.dropout is None else args.dropout,
            visual_dropout=args.visual_dropout, visual_proj=False if args.no_visual_proj else None,
            agva_audio_along_cells=args.agva_audio_along_cells, weak_loss_on=args.weak_loss_on or "scores",
            backend=args.backend or "auto", init=args.init or "default",
            dropout_impl=args.dropout_impl or ModelConfig().dropout_impl,
        )
    if family == "avel":
        if args.dropout is not None:
            raise ConfigError(f"--dropout {args.dropout} has no effect: AVEL has no dropout (leave it unset)")
        return AVELConfig(
            model=args.model, setting=args.setting, features=args.features, variant=args.avel_variant or "av_att",
            agva_audio_along_cells=False if args.agva_paper else None, mil_pooling=args.mil_pooling,
            loss=args.avel_loss or "reference", dmrn_blocks=args.dmrn_blocks,
            dmrn_swap_residuals=False if args.dmrn_own_residuals else None,
        )
    return PSPConfig(setting=args.setting, features=args.features, threshold=args.psp_threshold,
                     dropout=0.1 if args.dropout is None else args.dropout, avps_weight=args.avps_weight,
                     avps_target=args.avps_target)


def configs_from_args(args: argparse.Namespace) -> tuple[ModelConfig | AVELConfig | PSPConfig, TrainConfig]:
    """The validated configs; raises ConfigError before any work is done."""
    model_cfg = model_config_from_args(args)
    milestones = None
    if args.lr_milestones is not None:
        try:
            milestones = tuple(int(m) for m in args.lr_milestones.split(",") if m.strip())
        except ValueError:
            raise ConfigError(f"--lr-milestones must be comma-separated integers, got {args.lr_milestones!r}") from None
    train_cfg = TrainConfig(
        data=args.data, difficulty=args.difficulty, out=args.out, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, lr_milestones=milestones, lr_gamma=args.lr_gamma, grad_clip=args.grad_clip, seed=args.seed,
        data_seed=args.data_seed, amp=args.amp, tf32=args.tf32, compile=args.compile, device=args.device,
        num_workers=args.num_workers, max_steps=args.max_steps, subset=args.subset,
        eval_batch_size=args.eval_batch_size, lr_unit=args.lr_unit, shuffle=not args.no_shuffle,
        select_on=args.select_on, adam_impl=args.adam_impl,
    ).resolve(model_cfg.setting, model_name(model_cfg))
    for flag in ("debug_nan_at_step", "debug_nan_grad_at_step"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.resume is not None and args.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    check_out_dir(train_cfg.out)
    if args.resume not in (None, "auto") and not os.path.isfile(args.resume):
        raise ConfigError(f"--resume {args.resume!r}: no such checkpoint file")
    last = Path(train_cfg.out) / "last.pt"
    if args.resume == "auto" and not last.is_file():
        raise ConfigError(f"--resume: {str(last)!r} does not exist (nothing to resume in --out {train_cfg.out!r})")
    if args.resume not in (None, "auto") and last.exists() and not _same_file(args.resume, last) and not args.overwrite:
        raise ConfigError(
            f"--out {train_cfg.out!r} already holds another run ({last}); resuming {args.resume!r} there would mix "
            f"the two runs' checkpoints: choose an --out without a run, or --resume {str(last)!r} to continue that one"
        )
    present = run_files_in(train_cfg.out)
    if args.resume is None and present and not args.overwrite:
        how = "pass --resume to continue it, --overwrite to start afresh" if last.exists() else \
            "pass --overwrite to replace them"
        raise ConfigError(f"--out {train_cfg.out!r} already holds a run ({', '.join(present)}); {how}, "
                          "or choose another --out")
    return model_cfg, train_cfg


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def main(args: argparse.Namespace) -> int:
    model_cfg, cfg = configs_from_args(args)
    resume = None if args.resume is None else (str(Path(cfg.out) / "last.pt") if args.resume == "auto" else args.resume)
    return train(model_cfg, cfg, resume=resume, debug_nan_at_step=args.debug_nan_at_step,
                 debug_nan_grad_at_step=args.debug_nan_grad_at_step, debug_grads_out=args.debug_grads_out,
                 argv=getattr(args, "argv", None))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class _Progress:
    """What a Ctrl-C handler needs to know: the epoch last.pt holds in --out, and the open progress bar."""

    saved_epoch: int | None = None
    best_epoch: int | None = None
    bar: tqdm | None = None


def train(model_cfg: ModelConfig | AVELConfig | PSPConfig, cfg: TrainConfig, *, resume: str | None = None,
          debug_nan_at_step: int | None = None, debug_nan_grad_at_step: int | None = None,
          debug_grads_out: str | None = None, argv: list[str] | None = None) -> int:
    """Train; 0 on success, 1 on a non-finite stop, 130 on Ctrl-C (one line: what was saved, how to resume).

    argv: the command-line arguments (``train ...``) the run was started with, for the resume command.
    """
    # ---- processes: DDP when launched by torchrun (RANK/WORLD_SIZE set) ----
    ddp = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank, world_size, local_rank = 0, 1, 0
    if ddp:
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = resolve_device(cfg.device, local_rank, distributed=ddp)
    if cfg.batch_size % world_size:
        raise ConfigError(f"--batch-size {cfg.batch_size} must be divisible by the number of processes ({world_size})")
    if getattr(model_cfg, "backend", None) == "triton" and device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ConfigError(f"--backend triton needs a CUDA device, got {device} (CPU only under TRITON_INTERPRET=1); "
                          "use --backend auto")
    if cfg.tf32 and device.type != "cuda":
        raise ConfigError(f"--tf32 applies to CUDA devices only, got {device}")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32
    if ddp:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    master = rank == 0
    if cfg.amp == "auto":
        amp, note = resolve_amp(cfg.amp, device)
        cfg = dataclasses.replace(cfg, amp=amp, amp_auto=True)
        _log(master, note)
    out = Path(cfg.out)
    progress = _Progress()
    if resume is not None and _same_file(resume, out / "last.pt"):
        progress.saved_epoch = -1  # known once the checkpoint is read
    try:
        return _train(model_cfg, cfg, device, rank, world_size, master, out, resume, debug_nan_at_step,
                      debug_nan_grad_at_step, progress, debug_grads_out)
    except KeyboardInterrupt:  # Ctrl-C, also inside a checkpoint write (atomic: the old file stays)
        if progress.bar is not None:
            progress.bar.close()
        _log(master, _interrupted(out, cfg, resume, world_size, progress, argv), err=True)
        return 130
    finally:
        if ddp:
            dist.destroy_process_group()


def _interrupted(out: Path, cfg: TrainConfig, resume: str | None, world_size: int, progress: _Progress,
                 argv: list[str] | None) -> str:
    """The one line printed on Ctrl-C: what --out holds and the exact command that continues the run."""
    saved = progress.saved_epoch is not None and progress.saved_epoch >= 0 and (out / "last.pt").is_file()
    if saved:
        best = f", best.pt epoch {progress.best_epoch}" if progress.best_epoch else ""
        what = f"interrupted: {out / 'last.pt'} holds epoch {progress.saved_epoch} of {cfg.epochs}{best}"
        flag, how = "--resume", "resume with"
    elif resume is not None:  # resuming into another --out that holds no checkpoint yet: the same command
        what, flag, how = f"interrupted: nothing new was saved in {out}, {resume} is unchanged", None, "resume with"
    else:
        what, flag, how = f"interrupted before epoch 1 was saved: {out} holds no last.pt", "--overwrite", \
            "start again with"
    if argv is None:
        return f"{what}; {how} the same train command{f' and {flag}' if flag else ''}"
    args = list(argv) if flag is None else [*_without_run_flags(argv), flag]
    launcher = ["torchrun", "--nproc_per_node", str(world_size)] if world_size > 1 else ["python"]
    return f"{what}; {how}: {shlex.join([*launcher, '-m', 'examples.cmran', *args])}"


def _without_run_flags(argv: list[str]) -> list[str]:
    """argv without --resume [CHECKPOINT] and --overwrite (argparse also takes unique prefixes: --res, --ov)."""
    kept, skip_value = [], False
    for token in argv:
        if skip_value and not token.startswith("-"):
            skip_value = False
            continue
        skip_value = False
        name = token.split("=", 1)[0]
        if len(name) >= 3 and "--resume".startswith(name):
            skip_value = "=" not in token
            continue
        if len(name) >= 4 and "--overwrite".startswith(name):
            continue
        kept.append(token)
    return kept


def _log(master: bool, msg: str, *, err: bool = False) -> None:
    if master:
        tqdm.write(msg, file=sys.stderr if err else sys.stdout)


def _stop_non_finite(master: bool, bar, out: Path, epoch: int, step: int, what: str) -> int:
    """Stops before the optimizer step: the parameters (and every checkpoint written) stay finite."""
    bar.close()
    kept = (f"the last good checkpoint is {out / 'last.pt'} (epoch {epoch - 1})" if epoch > 1
            else "no checkpoint was written yet")
    _log(master, f"error: non-finite {what} at epoch {epoch}, step {step + 1}; training stopped, {kept}", err=True)
    return 1


def _global_order(sampler: DistributedSampler, world_size: int) -> list[list[int]]:
    """Every rank's dataset indices for this epoch, in order (collective under DDP; debugging aid)."""
    mine = list(sampler)
    if world_size == 1:
        return [mine]
    orders = [None] * world_size
    dist.all_gather_object(orders, mine)
    return orders


def _grad_record(model, order: list[list[int]], epoch: int, step: int, local_batch: int) -> dict:
    """The global batch of this step (per rank) and the gradient the optimizer is about to use."""
    return {
        "epoch": epoch, "step": step,
        "indices": [o[step * local_batch:(step + 1) * local_batch] for o in order],
        "grad": {n: p.grad.detach().cpu().clone() for n, p in model.named_parameters() if p.grad is not None},
    }


def _extra_states(model, world_size: int) -> list | None:
    """Each rank's model state beyond the weights (PSP's stale AVPS target buffer), or None (collective)."""
    get = getattr(model, "extra_training_state", None)
    if get is None:
        return None
    states = [get()]
    if world_size > 1:
        states = [None] * world_size
        dist.all_gather_object(states, get())
    return states


def _train(model_cfg, cfg, device, rank, world_size, master, out, resume, debug_nan_at_step,
           debug_nan_grad_at_step, progress: _Progress, debug_grads_out: str | None = None) -> int:
    ckpt = None
    if resume is not None:
        ckpt = load_checkpoint(resume)
        check_resumable(ckpt, model_cfg, cfg, resume)
        check_finite(ckpt["model"], resume, "weights")
        check_finite(ckpt["optimizer"]["state"], resume, "optimizer state")
        progress.best_epoch = ckpt["best_epoch"]  # resuming elsewhere brings best.pt along
        if progress.saved_epoch is not None:
            progress.saved_epoch = ckpt["epoch"]

    # ---- seed, data, model, optimizer ----
    seed_everything(cfg.seed)
    model = build_model(model_cfg).to(device)  # same init on every rank
    n_params = count_parameters(model)
    splits = build_splits(model_cfg, cfg)  # a data directory's values are checked here, before any output
    _log(master, describe(model))
    sampler = DistributedSampler(splits["train"], num_replicas=world_size, rank=rank, shuffle=cfg.shuffle,
                                 seed=cfg.seed)
    data_generator = torch.Generator().manual_seed(cfg.seed)  # DataLoader worker seeds
    loader = DataLoader(
        splits["train"], batch_size=cfg.batch_size // world_size, sampler=sampler, num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda", generator=data_generator, persistent_workers=False,
    )
    steps_per_epoch = len(loader) if cfg.max_steps is None else min(len(loader), cfg.max_steps)
    optimizer = make_adam(model.parameters(), lr=cfg.lr, impl=cfg.adam_impl)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.lr_milestones), gamma=cfg.lr_gamma)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    torch.manual_seed(cfg.seed + 1 + rank)  # this process's dropout stream

    start_epoch, best_val, best_epoch, history = 0, -1.0, 0, []
    if ckpt is not None:
        load_model_state(model, ckpt["model"], resume)
        optimizer.load_state_dict(ckpt["optimizer"])
        set_adam_impl(optimizer, cfg.adam_impl)  # the saved param groups carry the saving run's implementation
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        states = ckpt["rng"]
        if len(states) != world_size:
            _log(master, f"warning: resuming a {len(states)}-process run with {world_size} processes: "
                         "data order and dropout will not continue bit-exactly", err=True)
        set_rng_state(states[rank % len(states)], data_generator)
        if ckpt.get("model_extra") is not None:
            model.load_extra_training_state(ckpt["model_extra"][rank % len(ckpt["model_extra"])])
        start_epoch, best_val, best_epoch = ckpt["epoch"], ckpt["best_val"], ckpt["best_epoch"]
        history = list(ckpt["history"])
        best_on = {"val": "best val", "test": "best test", "last": "best last, val"}[cfg.select_on]
        _log(master, f"resumed from {resume} at epoch {start_epoch} ({best_on} {100 * best_val:.2f}% at epoch {best_epoch})")
        del ckpt

    train_model = model
    if world_size > 1:
        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:  # compile outside DDP, so the gradient all-reduce overlaps the backward pass
        train_model = torch.compile(train_model)

    if master:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(out, RUN_FILES)  # of killed writes: only one run owns a folder, and it starts now
        if resume is None:  # a fresh start (--overwrite): no stale files of an earlier run
            for name in ("last.pt", "best.pt", "result.json", "metrics.jsonl"):
                (out / name).unlink(missing_ok=True)
        elif not _same_file(Path(resume).parent, out):
            # resuming into another directory: bring the run's best checkpoint along (never keep a stale one)
            source_best = Path(resume).parent / "best.pt"
            if source_best.is_file():
                best_bytes = source_best.read_bytes()
                atomic_write(out / "best.pt", lambda f: f.write(best_bytes))
            else:
                (out / "best.pt").unlink(missing_ok=True)
        write_json(out / "config.json", {"model": model_cfg.to_dict(), "train": cfg.to_dict(),
                                         "world_size": world_size, "parameters": n_params})
        write_jsonl(out / "metrics.jsonl", history)
        _log(master, f"training on {device} x {world_size} process(es): {len(splits['train'])} train videos, "
                     f"{steps_per_epoch} steps/epoch of {cfg.batch_size}, amp={cfg.amp}, epochs {start_epoch + 1}..{cfg.epochs}")

    def checkpoint(epoch: int) -> dict:
        """The full training state; RNG states are gathered from every rank (collective)."""
        states = [None] * world_size
        if world_size > 1:
            dist.all_gather_object(states, rng_state(data_generator))
        else:
            states = [rng_state(data_generator)]
        return {
            "format": FORMAT, "version": VERSION, "model_config": model_cfg.to_dict(), "train_config": cfg.to_dict(),
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "rng": states, "epoch": epoch, "best_val": best_val,
            "best_epoch": best_epoch, "history": history, "world_size": world_size,
            "model_extra": _extra_states(model, world_size),
        }

    # ---- train ----
    global_step = start_epoch * steps_per_epoch
    grad_log: list[dict] = []
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        sampler.set_epoch(epoch)
        order = _global_order(sampler, world_size) if debug_grads_out is not None else None
        lr = optimizer.param_groups[0]["lr"]
        total_loss = 0.0
        bar = progress.bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}/{cfg.epochs}", leave=False,
                                  disable=not master, dynamic_ncols=True)
        for step, batch in enumerate(loader):
            if step >= steps_per_epoch:
                break
            global_step += 1
            visual, audio, segment_labels, video_labels = to_device(batch, device)
            with autocast(device, cfg.amp):
                output = train_model(visual, audio)
            output = type(output)(*(x.float() for x in output))
            loss = model.loss(output, segment_labels, video_labels)
            if debug_nan_at_step is not None and global_step == debug_nan_at_step:
                loss = loss * float("nan")
            if debug_nan_grad_at_step is not None and global_step == debug_nan_grad_at_step:
                # finite loss, NaN gradient: d sqrt(x)/dx at x = 0 is inf, times 0
                loss = loss + torch.sqrt(0.0 * next(model.parameters()).sum())
            reported = loss.detach().clone()
            if world_size > 1:  # every rank must agree to stop, before the gradient all-reduce
                dist.all_reduce(reported)
                reported /= world_size
            loss_value = reported.item()
            if not math.isfinite(loss_value):
                return _stop_non_finite(master, bar, out, epoch, step, f"training loss ({loss_value})")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            if order is not None:
                grad_log.append(_grad_record(model, order, epoch, step, cfg.batch_size // world_size))
            # the norm of the all-reduced gradients: the same on every rank, so all ranks agree to stop
            grad_norm = clip_gradients(model.parameters(), cfg.grad_clip).item()
            if not math.isfinite(grad_norm) and not scaler.is_enabled():  # fp16: the scaler skips the step
                return _stop_non_finite(master, bar, out, epoch, step, f"gradient norm ({grad_norm})")
            scaler.step(optimizer)
            scaler.update()
            if cfg.lr_unit == "step":
                scheduler.step()
            total_loss += loss_value
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}")
        bar.close()
        if cfg.lr_unit == "epoch":
            scheduler.step()

        scores = {}
        for split in ("val", "test") if cfg.select_on == "test" else ("val",):
            scores[split], _ = evaluate_accuracy(model, splits[split], device=device, amp=cfg.amp,
                                                 batch_size=cfg.eval_batch_size, rank=rank, world_size=world_size)
        val_acc = scores["val"]
        # "val": strictly better; "test": the PSP scripts' >= on test; "last": every epoch
        score = scores.get("test", val_acc)
        improved = cfg.select_on == "last" or score > best_val or (cfg.select_on == "test" and score >= best_val)
        if improved:
            best_val, best_epoch = score, epoch
        seconds = time.perf_counter() - t0
        record = {"epoch": epoch, "train_loss": total_loss / max(steps_per_epoch, 1), "val_acc": val_acc,
                  **({"test_acc": scores["test"]} if "test" in scores else {}), "lr": lr, "seconds": round(seconds, 3)}
        history.append(record)
        state = checkpoint(epoch)  # collective: every rank takes part
        if master:
            if improved:  # best first: a crash in between never leaves last.pt pointing past best.pt
                save_checkpoint(out / "best.pt", state)
                progress.best_epoch = epoch
            save_checkpoint(out / "last.pt", state)
            progress.saved_epoch = epoch
            write_jsonl(out / "metrics.jsonl", history)
        del state
        _log(master, f"epoch {epoch:3d}/{cfg.epochs} | train loss {record['train_loss']:.4f} | "
                     f"val acc {100 * val_acc:6.2f}%{' *' if improved else '  '} | lr {lr:.2e} | {seconds:6.1f} s")

    if debug_grads_out is not None and master:
        save_checkpoint(debug_grads_out, grad_log)

    # ---- test the best checkpoint, once ----
    if world_size > 1:
        dist.barrier()  # best.pt is on disk
    if not (out / "best.pt").is_file():
        raise CheckpointError(f"{out / 'best.pt'} is missing: no epoch of this run was scored on val")
    best = load_checkpoint(out / "best.pt")
    load_model_state(model, best["model"], out / "best.pt")
    test_acc, n_segments = evaluate_accuracy(model, splits["test"], device=device, amp=cfg.amp,
                                             batch_size=cfg.eval_batch_size, rank=rank, world_size=world_size)
    result = {"test_acc": test_acc, "test_segments": n_segments, "best_epoch": best["epoch"],
              "best_val_acc": best["history"][-1]["val_acc"], "epochs": cfg.epochs, "parameters": n_params,
              "setting": model_cfg.setting, "features": model_cfg.features, "checkpoint": str(out / "best.pt"),
              "model": model_name(model_cfg), "selected_on": cfg.select_on}
    if master:
        write_json(out / "result.json", result)
    picked = {"val": "picked on val", "test": "picked on TEST", "last": "the last epoch"}[cfg.select_on]
    _log(master, f"test accuracy of best.pt (epoch {best['epoch']}, {picked}, val "
                 f"{100 * best['history'][-1]['val_acc']:.2f}%): "
                 f"{100 * test_acc:.2f}% over {n_segments} segments")
    _log(master, next_steps(out, has_maps=getattr(model_cfg, "uses_agva", True)))
    return 0


def next_steps(out: Path, *, has_maps: bool = True) -> str:
    """Where the run went and the commands that read it (``visualize`` only for a model with attention maps)."""
    import shlex

    ckpt, q = out / "best.pt", lambda p: shlex.quote(str(p))
    return "\n".join([
        f"run folder {out}: checkpoint {ckpt}, metrics {out / 'metrics.jsonl'}, result {out / 'result.json'}",
        "next:",
        f"  python -m examples.cmran evaluate  --checkpoint {q(ckpt)} --split test",
        *([f"  python -m examples.cmran visualize --checkpoint {q(ckpt)} --out {q(out / 'vis')}"] if has_maps else []),
        f"  python -m examples.cmran predict   --checkpoint {q(ckpt)} --out {q(out / 'events.jsonl')}",
    ])


__all__ = ["CheckpointError", "add_arguments", "configs_from_args", "main", "train"]
