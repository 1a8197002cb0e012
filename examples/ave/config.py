"""The training recipe (``TrainConfig``): a validated dataclass shared by every model.

A bad or incompatible value raises ``ConfigError`` (a ``ValueError``) naming the field, the value and
what is allowed, before any work is done. ``None`` fields mean "the model's reference recipe for this
setting" (its folder's ``RECIPES``) and are filled by ``resolve``, so a config written to ``config.json``
reads back to the same object.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

from . import registry
from .checks import (
    SEED_MAX,
    ConfigError,
    check_choice,
    check_data,
    check_int,
    check_positive,
    known_fields,
)

AMP_MODES = ("none", "bf16", "fp16", "auto")  # auto: resolved for the device (amp.py)
ADAM_IMPLS = ("fused", "foreach", "for")  # torch.optim.Adam implementations (optim.py); "for" is torch's CPU default
LR_UNITS = ("epoch", "step")
SELECTIONS = ("val", "test", "last")
LABEL_SOURCES = ("auto", "annotations", "file")  # where a data directory's segment labels come from (data/release.py)


@dataclass(frozen=True)
class TrainConfig:
    """The recipe: Adam, MultiStepLR, gradient-norm clipping; model selection on val.

    ``None`` fields are the model's reference recipe (its folder's ``RECIPES``), filled by ``resolve``: CMRAN 200
    epochs, batch 32, lr 5e-4 x0.5 at epochs 10,20,30 (weak 5,20,40), clip 0.1 (weak 0.5).
    lr_unit: "epoch" (milestones count epochs) or "step" (optimizer steps, AVEL's schedule).
    shuffle: reshuffle the training videos every epoch; False keeps the stored order in fixed
        consecutive batches (the AVEL scripts' practice).
    select_on: the split whose accuracy picks best.pt: "val"; "test" (the PSP scripts' practice, which
        makes the reported test accuracy a best-of-epochs figure); "last" (the last epoch, as AVEL's weak
        script ends up doing).
    """

    data: str = "synthetic"
    difficulty: float | None = None  # synthetic data only (None = the generator's default)
    out: str = "runs/cmran"
    epochs: int | None = None
    batch_size: int | None = None  # global: split evenly over the DDP processes
    lr: float | None = None
    lr_milestones: tuple[int, ...] | None = None
    lr_gamma: float | None = None
    grad_clip: float | None = None  # 0 disables
    lr_unit: str | None = None
    shuffle: bool = True
    select_on: str = "val"
    seed: int = 0  # model init, dropout and data order
    data_seed: int | None = None  # the synthetic data set's seed (build_datasets(seed=...)); None = 0
    amp: str = "none"
    amp_auto: bool = False  # amp was chosen by "auto" on the run's device (amp then holds the choice)
    tf32: bool = False  # CUDA only: fp32 matrix products on TF32 tensor cores
    compile: bool = False
    device: str = "auto"
    num_workers: int = 0
    max_steps: int | None = None  # optimizer steps per epoch (tiny test runs)
    subset: int | None = None  # use only the first N videos of each split (tiny test runs)
    eval_batch_size: int = 64
    adam_impl: str = "fused"  # the same Adam update in torch's fused kernel; "for" is torch's default on a CPU
    labels: str = "auto"  # a data directory's segment labels: "auto", "annotations" (Annotations.txt), "file" (labels.h5)

    def resolve(self, setting: str, model: str = "cmran") -> TrainConfig:
        """Fill the model's and setting's recipe defaults, then validate."""
        recipe = registry.recipe(model, setting)
        if self.lr_unit in LR_UNITS and self.lr_unit != recipe["lr_unit"] and self.lr_milestones is None:
            raise ConfigError(f"lr_unit={self.lr_unit!r} changes what the milestones count, but lr_milestones is unset "
                              f"(the {model} recipe's {recipe['lr_milestones']} count {recipe['lr_unit']}s): give "
                              f"lr_milestones (--lr-milestones) in {self.lr_unit}s")
        filled = {k: v if getattr(self, k) is None else getattr(self, k) for k, v in recipe.items()}
        filled["lr_milestones"] = tuple(filled["lr_milestones"])
        cfg = dataclasses.replace(
            self,
            **filled,
            data_seed=0 if self.data_seed is None and self.data == "synthetic" else self.data_seed,
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if not isinstance(self.data, str) or not self.data:
            raise ConfigError(f"data must be 'synthetic' or a directory, got {self.data!r}")
        check_data(self.data)
        if not isinstance(self.out, str) or not self.out:
            raise ConfigError(f"out must name a directory, got {self.out!r} (an empty path would write into the "
                              "working directory)")
        if self.difficulty is not None:
            if self.data != "synthetic":
                raise ConfigError(f"difficulty applies only to data='synthetic', got data={self.data!r}")
            if isinstance(self.difficulty, bool) or not isinstance(self.difficulty, (int, float)) or not (
                0 <= self.difficulty < float("inf")
            ):
                raise ConfigError(f"difficulty must be a finite number >= 0, got {self.difficulty!r}")
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("eval_batch_size", self.eval_batch_size, 1)
        check_positive("lr", self.lr)
        check_positive("lr_gamma", self.lr_gamma)
        if self.lr_milestones is not None:
            ms = list(self.lr_milestones)
            for m in ms:
                check_int("lr_milestones[i]", m, 1)
            if ms != sorted(set(ms)):
                raise ConfigError(f"lr_milestones must be strictly increasing, got {ms}")
        if self.grad_clip is not None and (
            isinstance(self.grad_clip, bool) or not isinstance(self.grad_clip, (int, float))
            or not 0 <= self.grad_clip < math.inf
        ):
            raise ConfigError(f"grad_clip must be a finite number >= 0 (0 disables clipping), got {self.grad_clip!r}")
        check_choice("lr_unit", self.lr_unit, LR_UNITS)
        if not isinstance(self.shuffle, bool):
            raise ConfigError(f"shuffle must be a boolean, got {self.shuffle!r}")
        check_choice("select_on", self.select_on, SELECTIONS)
        check_int("seed", self.seed, 0, SEED_MAX)
        if self.data_seed is not None:
            if self.data != "synthetic":
                raise ConfigError(f"data_seed applies only to data='synthetic', got data={self.data!r}")
            check_int("data_seed", self.data_seed, 0, SEED_MAX)
        check_choice("amp", self.amp, AMP_MODES)
        check_choice("adam_impl", self.adam_impl, ADAM_IMPLS)
        check_choice("labels", self.labels, LABEL_SOURCES)
        if self.labels != "auto" and self.data == "synthetic":
            raise ConfigError(f"labels={self.labels!r} applies to a data directory only, not data='synthetic' "
                              "(leave it unset)")
        if not isinstance(self.tf32, bool) or not isinstance(self.compile, bool):
            raise ConfigError(f"tf32 and compile must be booleans, got {self.tf32!r}, {self.compile!r}")
        check_int("num_workers", self.num_workers, 0)
        if self.max_steps is not None:
            check_int("max_steps", self.max_steps, 1)
        if self.subset is not None:
            check_int("subset", self.subset, 1)
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu", "cuda", "mps")
            or (self.device.startswith("cuda:") and self.device[5:].isdigit())
        ):
            raise ConfigError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {self.device!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["lr_milestones"] is not None:
            d["lr_milestones"] = list(d["lr_milestones"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = known_fields(cls, d, "train config")
        d.setdefault("lr_unit", "epoch")  # written before lr_unit existed: CMRAN's epoch milestones
        d.setdefault("adam_impl", "for")  # written before the option existed: torch's default Adam (CPU)
        if d.get("lr_milestones") is not None:
            d["lr_milestones"] = tuple(d["lr_milestones"])
        return cls(**d)


# Train-config fields that may change when a run is resumed (everything else must match).
# adam_impl: the same update rule in another implementation (rounding differs, the optimizer state does not).
# data, labels: the data identity recorded in the checkpoint (data_identity.py) decides whether it is the same data.
RESUMABLE_CHANGES = (
    "epochs", "out", "device", "num_workers", "compile", "tf32", "eval_batch_size", "data", "adam_impl", "labels",
)
