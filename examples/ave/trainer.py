"""Training, read top to bottom: ``train`` sets up the processes, ``Trainer.run`` does the rest.

Axis legend: b batch (videos), t segments.

In order: take --out's lock for the run's life (``run_folder.claim``); set up DDP if RANK/WORLD_SIZE are set
(gloo on CPU, nccl on GPU); seed; build the model (print its parameter count), the data (DistributedSampler
over the train split; its files watched from now on, ``data_identity``), Adam + MultiStepLR + GradScaler;
restore a checkpoint if resuming (refusing other data than the run's); prepare the run folder; then per
epoch: check the data is unchanged, train with AMP and gradient-norm clipping (stopping cleanly on a
non-finite loss or gradient), score val, pick best.pt (``--select-on``), check the data again, write last.pt
(and best.pt) atomically, log one line and metrics.jsonl. At the end best.pt's test accuracy is reported
once and written to result.json. A signal stops the run where it is, except inside an epoch's save, which
it lets finish (``signals``); a full disk or changed data stops it with an error; either way the files
written so far are whole and the run says how to resume.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from . import registry, run_folder, signals
from .amp import resolve_amp
from .checkpoint import (
    FORMAT,
    VERSION,
    CheckpointError,
    check_finite,
    check_resumable,
    load_checkpoint,
    load_model_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .checks import ConfigError
from .config import TrainConfig
from .data_identity import DataChangedError, DataWatch, check_resumed, identity
from .datasets import build_splits, label_note, label_source
from .debug_hooks import DebugHooks, global_order, grad_record
from .evaluate import evaluate_accuracy
from .files import NoSpaceError, write_json, write_jsonl
from .optim import clip_gradients, make_adam, set_adam_impl
from .processes import Processes, extra_states, log
from .run_folder import same_file
from .run_messages import Progress, interrupted_message, next_steps
from .runtime import autocast, resolve_device, seed_everything, to_device


def train(model_cfg, cfg: TrainConfig, *, resume: str | None = None, overwrite: bool = False,
          allow_new_data: bool = False, debug_nan_at_step: int | None = None,
          debug_nan_grad_at_step: int | None = None, debug_grads_out: str | None = None,
          argv: list[str] | None = None, module: str = "examples.ave") -> int:
    """Train; 0 on success, 1 on a non-finite stop, changed data or a full disk, 128 + the signal on Ctrl-C,
    SIGTERM or SIGHUP (one line: what was saved, how to resume).

    The run holds ``cfg.out``'s lock for its life (``run_folder.claim``). argv: the command-line arguments
    (``train ...``) the run was started with, for the resume command.
    """
    procs = Processes.from_env()
    device = resolve_device(cfg.device, procs.local_rank, distributed=procs.distributed)
    _check_device_options(model_cfg, cfg, device, procs)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32
    progress = Progress()
    if resume is not None and same_file(resume, Path(cfg.out) / "last.pt"):
        progress.saved_epoch = -1  # known once the checkpoint is read
    hooks = DebugHooks(debug_nan_at_step, debug_nan_grad_at_step, debug_grads_out)

    def stopped(head: str) -> str:
        if progress.bar is not None:
            progress.bar.close()
        return interrupted_message(Path(cfg.out), cfg.epochs, resume, procs.world_size, progress, argv, module, head)

    with run_folder.claim(cfg.out, resume, overwrite, master=procs.master):
        if procs.distributed:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        try:
            if cfg.amp == "auto":
                amp, note = resolve_amp(cfg.amp, device)
                cfg = dataclasses.replace(cfg, amp=amp, amp_auto=True)
                log(procs.master, note)
            return Trainer(model_cfg, cfg, device, procs, progress, hooks, module, allow_new_data).run(resume)
        except KeyboardInterrupt as exc:  # a signal, also inside a checkpoint write (held until it is written)
            log(procs.master, stopped(signals.describe(exc)), err=True)
            return signals.exit_status(exc)
        except (DataChangedError, NoSpaceError) as exc:  # the files written so far are whole
            log(procs.master, f"error: {exc}", err=True)
            log(procs.master, stopped("stopped"), err=True)
            return 1
        finally:
            if procs.distributed:
                dist.destroy_process_group()


def _check_device_options(model_cfg, cfg: TrainConfig, device: torch.device, procs: Processes) -> None:
    if cfg.batch_size % procs.world_size:
        raise ConfigError(f"--batch-size {cfg.batch_size} must be divisible by the number of processes "
                          f"({procs.world_size})")
    if getattr(model_cfg, "backend", None) == "triton" and device.type != "cuda" \
            and os.environ.get("TRITON_INTERPRET") != "1":
        raise ConfigError(f"--backend triton needs a CUDA device, got {device} (CPU only under TRITON_INTERPRET=1); "
                          "use --backend auto")
    if cfg.tf32 and device.type != "cuda":
        raise ConfigError(f"--tf32 applies to CUDA devices only, got {device}")


@dataclass
class Selection:
    """The run's history and the epoch best.pt holds."""

    start_epoch: int = 0
    best_val: float = -1.0
    best_epoch: int = 0
    history: list[dict] = field(default_factory=list)


class Trainer:
    """One training run's state: model, data, optimizer, scheduler, scaler, RNG streams and the selection."""

    def __init__(self, model_cfg, cfg: TrainConfig, device: torch.device, procs: Processes, progress: Progress,
                 hooks: DebugHooks, module: str, allow_new_data: bool = False) -> None:
        self.model_cfg, self.cfg, self.device, self.procs = model_cfg, cfg, device, procs
        self.progress, self.hooks, self.module, self.allow_new_data = progress, hooks, module, allow_new_data
        self.out = Path(cfg.out)
        self.selection = Selection()
        self.grad_log: list[dict] = []

    # ---- the run ----
    def run(self, resume: str | None) -> int:
        ckpt = self.read_resumed(resume) if resume is not None else None
        self.build()
        if ckpt is not None:
            self.restore(ckpt, resume)
            del ckpt
        self.wrap()
        if self.procs.master:
            self.prepare_run_folder(resume)
        global_step = self.selection.start_epoch * self.steps_per_epoch
        for epoch in range(self.selection.start_epoch + 1, self.cfg.epochs + 1):
            self.watch.check(f"before epoch {epoch}")
            t0 = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            mean_loss, global_step = self.train_epoch(epoch, global_step)
            if mean_loss is None:
                return 1
            record, improved = self.score_and_select(epoch, mean_loss, lr, time.perf_counter() - t0)
            self.watch.check(f"after epoch {epoch}'s training and validation, before it was saved")
            self.save(epoch, improved)
            log(self.procs.master, f"epoch {epoch:3d}/{self.cfg.epochs} | train loss {record['train_loss']:.4f} | "
                                   f"val acc {100 * record['val_acc']:6.2f}%{' *' if improved else '  '} | "
                                   f"lr {lr:.2e} | {record['seconds']:6.1f} s")
        if self.hooks.grads_out is not None and self.procs.master:
            save_checkpoint(self.hooks.grads_out, self.grad_log)
        self.watch.check("before the test")
        self.final_test()
        return 0

    def read_resumed(self, resume: str) -> dict:
        ckpt = load_checkpoint(resume)
        check_resumable(ckpt, self.model_cfg, self.cfg, resume)
        check_finite(ckpt["model"], resume, "weights")
        check_finite(ckpt["optimizer"]["state"], resume, "optimizer state")
        self.progress.best_epoch = ckpt["best_epoch"]  # resuming elsewhere brings best.pt along
        if self.progress.saved_epoch is not None:
            self.progress.saved_epoch = ckpt["epoch"]
        return ckpt

    # ---- seed, data, model, optimizer ----
    def build(self) -> None:
        cfg, procs = self.cfg, self.procs
        seed_everything(cfg.seed)
        self.model = registry.build_model(self.model_cfg).to(self.device)  # same init on every rank
        self.n_params = registry.count_parameters(self.model)
        self.watch = DataWatch(cfg.data, self.model_cfg.setting)  # the data files as the run opens them
        self.splits = build_splits(self.model_cfg, cfg)  # a data directory's values are checked here, before any output
        self.watch.check("while its data was being checked")
        self.data_identity = identity(cfg.data, self.model_cfg.setting, label_source(self.splits))
        log(procs.master, registry.describe(self.model))
        if label_source(self.splits) is not None:
            log(procs.master, label_note(self.splits))
        self.sampler = DistributedSampler(self.splits["train"], num_replicas=procs.world_size, rank=procs.rank,
                                          shuffle=cfg.shuffle, seed=cfg.seed)
        self.data_generator = torch.Generator().manual_seed(cfg.seed)  # DataLoader worker seeds
        self.loader = DataLoader(
            self.splits["train"], batch_size=cfg.batch_size // procs.world_size, sampler=self.sampler,
            num_workers=cfg.num_workers, pin_memory=self.device.type == "cuda", generator=self.data_generator,
            persistent_workers=False,
        )
        self.steps_per_epoch = len(self.loader) if cfg.max_steps is None else min(len(self.loader), cfg.max_steps)
        self.optimizer = make_adam(self.model.parameters(), lr=cfg.lr, impl=cfg.adam_impl)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, list(cfg.lr_milestones),
                                                              gamma=cfg.lr_gamma)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.amp == "fp16")
        torch.manual_seed(cfg.seed + 1 + procs.rank)  # this process's dropout stream

    def restore(self, ckpt: dict, resume: str) -> None:
        procs = self.procs
        load_model_state(self.model, ckpt["model"], resume)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        set_adam_impl(self.optimizer, self.cfg.adam_impl)  # the saved param groups carry the saving run's impl
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        states = ckpt["rng"]
        if len(states) != procs.world_size:
            log(procs.master, f"warning: resuming a {len(states)}-process run with {procs.world_size} processes: "
                              "data order and dropout will not continue bit-exactly", err=True)
        set_rng_state(states[procs.rank % len(states)], self.data_generator)
        if ckpt.get("model_extra") is not None:
            self.model.load_extra_training_state(ckpt["model_extra"][procs.rank % len(ckpt["model_extra"])])
        self.selection = Selection(ckpt["epoch"], ckpt["best_val"], ckpt["best_epoch"], list(ckpt["history"]))
        note, new_data = check_resumed(ckpt.get("data_identity"), self.data_identity, resume, self.cfg.data,
                                       self.allow_new_data)
        if note is not None:
            log(procs.master, note, err=True)
        if new_data:  # accuracies on the earlier data do not compare with this data's
            self.selection.best_val = -1.0
        s = self.selection
        best_on = {"val": "best val", "test": "best test", "last": "best last, val"}[self.cfg.select_on]
        log(procs.master, f"resumed from {resume} at epoch {s.start_epoch} ({best_on} {100 * s.best_val:.2f}% at "
                          f"epoch {s.best_epoch})")

    def wrap(self) -> None:
        self.train_model = self.model
        if self.procs.world_size > 1:
            self.train_model = DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.cfg.compile:  # compile outside DDP, so the gradient all-reduce overlaps the backward pass
            self.train_model = torch.compile(self.train_model)

    def config_record(self) -> dict:
        return {"model": self.model_cfg.to_dict(), "train": self.cfg.to_dict(), "world_size": self.procs.world_size,
                "parameters": self.n_params}

    def prepare_run_folder(self, resume: str | None) -> None:
        cfg = self.cfg
        self.progress.replacing = run_folder.prepare(self.out, resume, self.config_record(), self.selection.history)
        log(True, f"training on {self.device} x {self.procs.world_size} process(es): {len(self.splits['train'])} "
                  f"train videos, {self.steps_per_epoch} steps/epoch of {cfg.batch_size}, amp={cfg.amp}, epochs "
                  f"{self.selection.start_epoch + 1}..{cfg.epochs}")

    # ---- one epoch ----
    def train_epoch(self, epoch: int, global_step: int) -> tuple[float | None, int]:
        """(mean training loss or None after a non-finite stop, the global step count)."""
        cfg, procs = self.cfg, self.procs
        self.model.train()
        self.sampler.set_epoch(epoch)
        order = global_order(self.sampler, procs.world_size) if self.hooks.grads_out is not None else None
        total_loss = 0.0
        bar = self.progress.bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {epoch}/{cfg.epochs}", leave=False,
                                       disable=not procs.master, dynamic_ncols=True)
        for step, batch in enumerate(self.loader):
            if step >= self.steps_per_epoch:
                break
            global_step += 1
            loss_value = self.train_step(batch, global_step, order, epoch, step)
            if isinstance(loss_value, str):
                self._stop_non_finite(bar, epoch, step, loss_value)
                return None, global_step
            total_loss += loss_value
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}")
            signals.check()  # a signal that DataLoader internals swallowed stops here
        bar.close()
        if cfg.lr_unit == "epoch":
            self.scheduler.step()
        return total_loss / max(self.steps_per_epoch, 1), global_step

    def train_step(self, batch, global_step: int, order, epoch: int, step: int) -> float | str:
        """One optimizer step; the loss, or what was not finite (then no step is taken)."""
        model, procs = self.model, self.procs
        visual, audio, segment_labels, video_labels = to_device(batch, self.device)
        with autocast(self.device, self.cfg.amp):
            output = self.train_model(visual, audio)
        output = type(output)(*(x.float() for x in output))
        loss = self.hooks.loss(model.loss(output, segment_labels, video_labels), global_step, model)
        reported = loss.detach().clone()
        if procs.world_size > 1:  # every rank must agree to stop, before the gradient all-reduce
            dist.all_reduce(reported)
            reported /= procs.world_size
        loss_value = reported.item()
        if not math.isfinite(loss_value):
            return f"training loss ({loss_value})"
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        if order is not None:
            self.grad_log.append(grad_record(model, order, epoch, step, self.cfg.batch_size // procs.world_size))
        # the norm of the all-reduced gradients: the same on every rank, so all ranks agree to stop
        grad_norm = clip_gradients(model.parameters(), self.cfg.grad_clip).item()
        if not math.isfinite(grad_norm) and not self.scaler.is_enabled():  # fp16: the scaler skips the step
            return f"gradient norm ({grad_norm})"
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.cfg.lr_unit == "step":
            self.scheduler.step()
        return loss_value

    def _stop_non_finite(self, bar, epoch: int, step: int, what: str) -> None:
        """Stops before the optimizer step: the parameters (and every checkpoint written) stay finite."""
        bar.close()
        kept = (f"the last good checkpoint is {self.out / 'last.pt'} (epoch {epoch - 1})" if epoch > 1
                else "no checkpoint was written yet")
        if self.progress.replacing:
            kept += f"; {self.out} still holds the earlier run, untouched"
        log(self.procs.master, f"error: non-finite {what} at epoch {epoch}, step {step + 1}; training stopped, "
                               f"{kept}", err=True)

    # ---- score, select, save ----
    def score_and_select(self, epoch: int, mean_loss: float, lr: float, seconds: float) -> tuple[dict, bool]:
        cfg, s = self.cfg, self.selection
        scores = {split: self.accuracy(split)[0] for split in (("val", "test") if cfg.select_on == "test" else ("val",))}
        # "val": strictly better; "test": the PSP scripts' >= on test; "last": every epoch
        score = scores.get("test", scores["val"])
        improved = cfg.select_on == "last" or score > s.best_val or (cfg.select_on == "test" and score >= s.best_val)
        if improved:
            s.best_val, s.best_epoch = score, epoch
        record = {"epoch": epoch, "train_loss": mean_loss, "val_acc": scores["val"],
                  **({"test_acc": scores["test"]} if "test" in scores else {}), "lr": lr, "seconds": round(seconds, 3)}
        s.history.append(record)
        return record, improved

    def accuracy(self, split: str) -> tuple[float, int]:
        return evaluate_accuracy(self.model, self.splits[split], device=self.device, amp=self.cfg.amp,
                                 batch_size=self.cfg.eval_batch_size, rank=self.procs.rank,
                                 world_size=self.procs.world_size)

    def checkpoint(self, epoch: int) -> dict:
        """The full training state; RNG states are gathered from every rank (collective)."""
        states = [rng_state(self.data_generator)]
        if self.procs.world_size > 1:
            states = [None] * self.procs.world_size
            dist.all_gather_object(states, rng_state(self.data_generator))
        s = self.selection
        return {
            "format": FORMAT, "version": VERSION, "model_config": self.model_cfg.to_dict(),
            "train_config": self.cfg.to_dict(), "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": states, "epoch": epoch, "best_val": s.best_val,
            "best_epoch": s.best_epoch, "history": s.history, "world_size": self.procs.world_size,
            "model_extra": extra_states(self.model, self.procs.world_size), "data_identity": self.data_identity,
        }

    def save(self, epoch: int, improved: bool) -> None:
        state = self.checkpoint(epoch)  # collective: every rank takes part
        if not self.procs.master:
            return
        with signals.deferred():  # a signal waits until the epoch is saved whole
            if self.progress.replacing:  # --overwrite: the earlier run's files go once this run's are whole
                run_folder.replace_earlier_run(self.out, state, self.selection.history, self.config_record(), improved)
                self.progress.replacing = False
            else:
                if improved:  # best first: a crash in between never leaves last.pt pointing past best.pt
                    save_checkpoint(self.out / "best.pt", state)
                    self.progress.best_epoch = epoch
                save_checkpoint(self.out / "last.pt", state)
                write_jsonl(self.out / "metrics.jsonl", self.selection.history)
            self.progress.best_epoch = epoch if improved else self.progress.best_epoch
            self.progress.saved_epoch = epoch

    # ---- test the best checkpoint, once ----
    def final_test(self) -> None:
        out, cfg, model_cfg = self.out, self.cfg, self.model_cfg
        if self.procs.world_size > 1:
            dist.barrier()  # best.pt is on disk
        if not (out / "best.pt").is_file():
            raise CheckpointError(f"{out / 'best.pt'} is missing: no epoch of this run was scored on val")
        best = load_checkpoint(out / "best.pt")
        load_model_state(self.model, best["model"], out / "best.pt")
        test_acc, n_segments = self.accuracy("test")
        best_val_acc = best["history"][-1]["val_acc"]
        result = {"test_acc": test_acc, "test_segments": n_segments, "best_epoch": best["epoch"],
                  "best_val_acc": best_val_acc, "epochs": cfg.epochs, "parameters": self.n_params,
                  "setting": model_cfg.setting, "features": model_cfg.features, "checkpoint": str(out / "best.pt"),
                  "model": registry.model_name(model_cfg), "selected_on": cfg.select_on}
        if self.procs.master:
            write_json(out / "result.json", result)
        picked = {"val": "picked on val", "test": "picked on TEST", "last": "the last epoch"}[cfg.select_on]
        log(self.procs.master, f"test accuracy of best.pt (epoch {best['epoch']}, {picked}, val "
                               f"{100 * best_val_acc:.2f}%): {100 * test_acc:.2f}% over {n_segments} segments")
        has_maps = registry.family_of_config(model_cfg).figures is not None and getattr(model_cfg, "uses_agva", True)
        log(self.procs.master, next_steps(out, module=self.module, has_maps=has_maps))


__all__ = ["DebugHooks", "Processes", "Trainer", "train"]
