"""PSP's architecture and loss (``PSPConfig``) and its reference recipes (``RECIPES``); docs/psp.md."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from examples.ave.checks import (
    ConfigError,
    check_choice,
    check_positive,
    check_probability,
    fill_default,
    known_fields,
)
from examples.ave.constants import SETTINGS, VISUAL_DIMS

DIM = 256  # the BiLSTM output, 2 x 128
AVPS_TARGETS = ("clean", "stale")
THRESHOLDS = {"supervised": 0.099, "weak": 0.095}


@dataclass(frozen=True)
class PSPConfig:
    """PSP's architecture and loss. Defaults are the reference code's, except ``avps_target``.

    threshold: tau, the pruning threshold; None = 0.099 supervised / 0.095 weak (tied to T = 10).
    dropout: PSP's dropout (0.1).
    avps_weight: supervised only; None = 100, the weight of the AVPS loss beside the cross-entropy.
    avps_target: supervised only; None = "clean": each video's target is 1/k on its k event segments
        (the paper). "stale" reproduces the reference loader, whose per-slot target buffer is never
        cleared, so earlier videos' entries stay in their batch slot.
    """

    model: str = "psp"
    setting: str = "supervised"
    features: str = "vgg19"
    threshold: float | None = None
    dropout: float = 0.1
    avps_weight: float | None = None
    avps_target: str | None = None

    def __post_init__(self) -> None:
        check_choice("model", self.model, ("psp",))
        check_choice("setting", self.setting, SETTINGS)
        check_choice("features", self.features, VISUAL_DIMS)
        if self.threshold is None:
            object.__setattr__(self, "threshold", THRESHOLDS[self.setting])
        check_probability("threshold", self.threshold)
        check_probability("dropout", self.dropout)
        supervised = self.setting == "supervised"
        fill_default(self, "avps_weight", supervised, 100.0, "the weak PSP has no AVPS loss")
        fill_default(self, "avps_target", supervised, "clean", "the weak PSP has no AVPS loss")
        if self.avps_weight is not None:
            if self.avps_weight != 0:
                check_positive("avps_weight", self.avps_weight)
            object.__setattr__(self, "avps_weight", float(self.avps_weight))
        if self.avps_target is not None:
            check_choice("avps_target", self.avps_target, AVPS_TARGETS)
        if self.avps_weight == 0 and self.avps_target != "clean":
            raise ConfigError(f"avps_target={self.avps_target!r} has no effect with avps_weight=0 (leave it unset)")

    @property
    def visual_dim(self) -> int:
        return VISUAL_DIMS[self.features]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PSPConfig:
        return cls(**known_fields(cls, d, "model config"))


# The reference scripts' recipe: lr x0.8 after epochs 60 and 120 (supervised) / 80 and 160 (weak).
RECIPES = {
    ("psp", "supervised"): {"epochs": 300, "batch_size": 128, "lr": 1e-3, "lr_milestones": (60, 120),
                            "lr_gamma": 0.8, "lr_unit": "epoch", "grad_clip": 0.0},
}
RECIPES[("psp", "weak")] = {**RECIPES[("psp", "supervised")], "lr_milestones": (80, 160)}
