"""The ``train`` subcommand: its options, validated into a model config and a ``TrainConfig`` before any
work is done; the training itself is ``examples.ave.trainer``.

    python -m examples.cmran train --data synthetic --epochs 3 --out runs/demo
    python -m examples.ave train --model psp --setting weak --epochs 3 --out runs/psp-weak
    torchrun --nproc_per_node 4 -m examples.cmran train --data /data/AVE --out runs/ave

Each model folder adds its own flags (an argument group); a flag of another model is refused. Unset recipe
options are the chosen model's reference recipe (its folder's ``RECIPES``). --batch-size is the global
batch: each of the N processes takes batch/N videos per step, so a run's recipe (and its result) does not
depend on how many processes share it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import registry, run_folder
from .checks import ConfigError, check_json_values
from .config import ADAM_IMPLS, AMP_MODES, LABEL_SOURCES, LR_UNITS, SELECTIONS, TrainConfig
from .constants import SETTINGS, VISUAL_DIMS
from .trainer import train


def add_arguments(p: argparse.ArgumentParser) -> None:
    _add_data_arguments(p.add_argument_group("data"))
    _add_recipe_arguments(p.add_argument_group("recipe (unset: the chosen model's reference recipe)"))
    g = p.add_argument_group("model")
    g.add_argument("--model", default=registry.DEFAULT_MODEL, choices=registry.model_names(),
                   help="the model to train (each model folder adds its own options below)")
    g.add_argument("--dropout", type=float, default=None,
                   help="the model's dropout, where it has one (default 0.1 for cmran and psp)")
    family_flags = {}
    for fam in registry.families():
        if fam.add_arguments is not None:
            group = _Recorder(p.add_argument_group(fam.title or f"--model {'/'.join(fam.names)} options"))
            fam.add_arguments(group)
            family_flags[fam.names] = [(a.dest, a.option_strings[0], a.default) for a in group.actions]
    p.set_defaults(family_flags=family_flags)
    _add_run_arguments(p.add_argument_group("run"))


class _Recorder:
    """An argument group that remembers the options a model folder adds to it."""

    def __init__(self, group) -> None:
        self.group, self.actions = group, []

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        action = self.group.add_argument(*args, **kwargs)
        self.actions.append(action)
        return action


def _add_data_arguments(g) -> None:
    d = TrainConfig()
    g.add_argument("--setting", default="supervised", choices=SETTINGS, help="supervised or weak (video labels only)")
    g.add_argument("--data", default=d.data, help="'synthetic' or the AVE release directory")
    g.add_argument("--features", default="vgg19", choices=tuple(VISUAL_DIMS), help="visual feature extractor")
    g.add_argument("--difficulty", type=float, default=None, help="synthetic data difficulty (default: the generator's)")
    g.add_argument("--data-seed", type=int, default=None, help="seed of the synthetic data set (default 0)")
    g.add_argument("--subset", type=int, default=None, help="use only the first N videos of each split (smoke tests)")
    g.add_argument("--labels", default="auto", choices=LABEL_SOURCES,
                   help="a data directory's segment labels: Annotations.txt or labels.h5 (auto: the annotations when "
                        "they match the features, else labels.h5; a disagreement between the two is refused)")
    g.add_argument("--num-workers", type=int, default=d.num_workers, help="DataLoader worker processes")


def _recipe_defaults(key: str) -> str:
    """``default: cmran 32; avel 64; psp 128``-style text from the registered recipes."""
    parts = []
    for name in registry.model_names():
        values = {s: r[key] for (n, s), r in registry.family(name).recipes.items() if n == name}
        text = ",".join(map(str, values.get("supervised", ()))) if key == "lr_milestones" else values.get("supervised")
        if "weak" in values and values["weak"] != values.get("supervised"):
            weak = ",".join(map(str, values["weak"])) if key == "lr_milestones" else values["weak"]
            text = f"{text} / weak {weak}"
        parts.append(f"{name} {text}")
    return "default " + "; ".join(parts)


def _add_recipe_arguments(g) -> None:
    d = TrainConfig()
    g.add_argument("--epochs", type=int, default=None, help=_recipe_defaults("epochs"))
    g.add_argument("--batch-size", type=int, default=None,
                   help=f"global batch, split over DDP processes ({_recipe_defaults('batch_size')})")
    g.add_argument("--lr", type=float, default=None, help=f"Adam lr ({_recipe_defaults('lr')})")
    g.add_argument("--lr-milestones", default=None,
                   help="comma-separated epochs or steps (--lr-unit) at which the lr is multiplied by --lr-gamma "
                        f"({_recipe_defaults('lr_milestones')})")
    g.add_argument("--lr-gamma", type=float, default=None, help=_recipe_defaults("lr_gamma"))
    g.add_argument("--lr-unit", default=None, choices=LR_UNITS,
                   help=f"what --lr-milestones count ({_recipe_defaults('lr_unit')})")
    g.add_argument("--grad-clip", type=float, default=None,
                   help=f"gradient-norm clip, 0 = off ({_recipe_defaults('grad_clip')})")
    g.add_argument("--no-shuffle", action="store_true",
                   help="keep the stored training order in fixed batches every epoch (the AVEL scripts' practice)")
    g.add_argument("--select-on", default="val", choices=SELECTIONS,
                   help="the split whose accuracy picks best.pt (test: the PSP scripts' practice; last: the last epoch)")
    g.add_argument("--seed", type=int, default=d.seed, help="model init, dropout and data order")
    g.add_argument("--max-steps", type=int, default=None, help="at most this many steps per epoch (tiny runs)")
    g.add_argument("--eval-batch-size", type=int, default=d.eval_batch_size, help="videos per evaluation batch")
    g.add_argument("--adam-impl", default=d.adam_impl, choices=ADAM_IMPLS,
                   help="torch's Adam implementation, same update rule ('for': torch's CPU default)")


def _add_run_arguments(g) -> None:
    d = TrainConfig()
    g.add_argument("--out", default=d.out, help="run directory: config.json, metrics.jsonl, last.pt, best.pt, result.json")
    g.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="continue from OUT/last.pt (or the given checkpoint)")
    g.add_argument("--overwrite", action="store_true",
                   help="start afresh in an --out that holds a run (its files are replaced at the first save)")
    g.add_argument("--allow-new-data", action="store_true",
                   help="with --resume: continue on other data than the run trained on (refused otherwise)")
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


def _refuse_other_families_flags(args: argparse.Namespace) -> None:
    """A flag of a model folder other than ``--model``'s is refused (it would be silently ignored)."""
    chosen = registry.family(args.model)
    for fam in registry.families():
        given = [flag for dest, flag, unset in getattr(args, "family_flags", {}).get(fam.names, ())
                 if getattr(args, dest, unset) != unset]
        if fam is not chosen and given:
            raise ConfigError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to --model "
                              f"{'/'.join(fam.names)} only, not --model {args.model}")


def model_config_from_args(args: argparse.Namespace):
    """The validated model config of ``--model``; options of another model are refused."""
    _refuse_other_families_flags(args)
    return registry.family(args.model).config_from_args(args, args.model)


def _milestones(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(m) for m in text.split(",") if m.strip())
    except ValueError:
        raise ConfigError(f"--lr-milestones must be comma-separated integers, got {text!r}") from None


def configs_from_args(args: argparse.Namespace):
    """The validated (model config, TrainConfig); raises ConfigError before any work is done."""
    model_cfg = model_config_from_args(args)
    train_cfg = TrainConfig(
        data=args.data, difficulty=args.difficulty, out=args.out, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, lr_milestones=_milestones(args.lr_milestones), lr_gamma=args.lr_gamma, grad_clip=args.grad_clip,
        seed=args.seed, data_seed=args.data_seed, amp=args.amp, tf32=args.tf32, compile=args.compile,
        device=args.device, num_workers=args.num_workers, max_steps=args.max_steps, subset=args.subset,
        eval_batch_size=args.eval_batch_size, lr_unit=args.lr_unit, shuffle=not args.no_shuffle,
        select_on=args.select_on, adam_impl=args.adam_impl, labels=args.labels,
    ).resolve(model_cfg.setting, registry.model_name(model_cfg))
    check_json_values("model", model_cfg.to_dict())  # what config.json will hold: no NaN or infinity
    check_json_values("train", train_cfg.to_dict())
    for flag in ("debug_nan_at_step", "debug_nan_grad_at_step"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.allow_new_data and args.resume is None:
        raise ConfigError("--allow-new-data applies to --resume only")
    run_folder.check(train_cfg.out, args.resume, args.overwrite)  # again under the folder's lock, when training
    return model_cfg, train_cfg


def main(args: argparse.Namespace) -> int:
    from .data.extracted import check_trainable

    model_cfg, cfg = configs_from_args(args)
    check_trainable(cfg.data, model_cfg.setting, cfg.select_on)  # labels and rows in every split (extracted.py)
    resume = None if args.resume is None else (str(Path(cfg.out) / "last.pt") if args.resume == "auto" else args.resume)
    return train(model_cfg, cfg, resume=resume, overwrite=args.overwrite, allow_new_data=args.allow_new_data,
                 debug_nan_at_step=args.debug_nan_at_step,
                 debug_nan_grad_at_step=args.debug_nan_grad_at_step, debug_grads_out=args.debug_grads_out,
                 argv=getattr(args, "argv", None), module=getattr(args, "module", "examples.ave"))


__all__ = ["add_arguments", "configs_from_args", "main", "model_config_from_args"]
