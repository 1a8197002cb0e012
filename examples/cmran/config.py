"""CMRAN configuration: the architecture (``ModelConfig``) and the training recipe (``TrainConfig``).

Both are validated dataclasses: a bad or incompatible value raises ``ConfigError`` (a
``ValueError``) naming the field, the value and what is allowed, before any work is done.
``None`` fields mean "the recipe's default for this setting" and are resolved on construction,
so a config written to ``config.json`` reads back to the same object.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import asdict, dataclass, fields

from avattn import BACKGROUND, CMRA_VARIANTS, INTERACTION_VARIANTS

SETTINGS = ("supervised", "weak")
# Visual channels of each feature extractor (the data package's FEATURE_DIMS; a test checks they agree).
VISUAL_DIMS = {"vgg19": 512, "resnet151": 2048}
AUDIO_DIM = 128  # VGGish
NUM_EVENT_CLASSES = BACKGROUND  # 28 events, background is index 28
ARCHS = ("cmran", "audio_only", "visual_only", "audio_visual", "audio_visual_agva")
VISUAL_ATTENTIONS = ("agsca", "agva", "average")
WEAK_LOSS_INPUTS = ("scores", "logits")
AMP_MODES = ("none", "bf16", "fp16", "auto")  # auto: resolved by train/evaluate (amp.py)
INITS = ("default", "reference")
ADAM_IMPLS = ("fused", "foreach", "for")  # torch.optim.Adam implementations (optim.py); "for" is torch's CPU default
DROPOUT_IMPLS = ("bit", "torch")  # relation-layer dropout masks: avattn.BitDropout or nn.Dropout

# The recipe of the reference implementation (Xu et al., ACM MM 2020), per setting.
INTERACTION_HEADS = {"supervised": 4, "weak": 2}
LR_MILESTONES = {"supervised": (10, 20, 30), "weak": (5, 20, 40)}
GRAD_CLIP = {"supervised": 0.1, "weak": 0.5}
LR_UNITS = ("epoch", "step")
SELECTIONS = ("val", "test", "last")

# Each model's reference recipe per setting (docs/cmran.md, docs/avel.md, docs/psp.md): epochs, global
# batch, Adam lr, lr milestones, lr factor, their unit, gradient-norm clip (0 = none).
RECIPES = {
    ("cmran", s): {"epochs": 200, "batch_size": 32, "lr": 5e-4, "lr_milestones": LR_MILESTONES[s],
                   "lr_gamma": 0.5, "lr_unit": "epoch", "grad_clip": GRAD_CLIP[s]}
    for s in SETTINGS
}
# AVEL: StepLR(15,000 iterations, x0.1) stepped before each update, so update 15,000 is the first at 1e-4:
# here the scheduler steps after each update, hence 14,999.
RECIPES[("avel", "supervised")] = {"epochs": 300, "batch_size": 64, "lr": 1e-3, "lr_milestones": (14999,),
                                   "lr_gamma": 0.1, "lr_unit": "step", "grad_clip": 0.0}
RECIPES[("avel", "weak")] = {**RECIPES[("avel", "supervised")], "epochs": 250}
RECIPES[("avel-dmrn", "supervised")] = RECIPES[("avel", "supervised")]
# PSP: lr x0.8 after epochs 60 and 120 (supervised) / 80 and 160 (weak).
RECIPES[("psp", "supervised")] = {"epochs": 300, "batch_size": 128, "lr": 1e-3, "lr_milestones": (60, 120),
                                  "lr_gamma": 0.8, "lr_unit": "epoch", "grad_clip": 0.0}
RECIPES[("psp", "weak")] = {**RECIPES[("psp", "supervised")], "lr_milestones": (80, 160)}


class ConfigError(ValueError):
    """An invalid or incompatible configuration value."""


def _choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def _int(name: str, value, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"{name} must be an integer {rng}, got {value!r}")


def _prob(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be a probability in [0, 1), got {value!r}")


def _positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be a finite positive number, got {value!r}")


SEED_MAX = 2**63 - 1  # torch and numpy seeds are 64-bit; a seed above this cannot be used


def check_out_dir(out, flag: str = "--out") -> None:
    """``out`` can be (or become) a writable directory: not empty, not a file, not under a file."""
    if not isinstance(out, (str, os.PathLike)) or not os.fspath(out):
        raise ConfigError(f"{flag} must name a directory, got {out!r} (an empty path would write into the "
                          "working directory)")
    path = os.path.abspath(os.fspath(out))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"{flag} {os.fspath(out)!r} is a file, expected a directory (or a path to create one)")
    parent = path
    while not os.path.exists(parent):  # the nearest existing ancestor decides whether it can be created
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ConfigError(f"{flag} {os.fspath(out)!r} lies under the file {parent!r}, expected a directory path")
    if not os.access(parent, os.W_OK | os.X_OK):
        what = "is" if parent == path else f"would be created in {parent!r}, which is"
        raise ConfigError(f"{flag} {os.fspath(out)!r} {what} not writable")


def check_data(data: str) -> None:
    """``data`` is 'synthetic' or an existing directory (the AVE release layout)."""
    if data != "synthetic" and not os.path.isdir(data):
        raise ConfigError(f"data directory {data!r} does not exist: no such directory "
                          "(pass 'synthetic' or the AVE release directory)")


def _set(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class ModelConfig:
    """The architecture. Defaults are the paper's model; every ablation of Tables 3-5 is a field.

    arch: ``"cmran"``, or a baseline built from the same parts (see docs/cmran.md):
        ``"audio_only"``, ``"visual_only"``, ``"audio_visual"``, ``"audio_visual_agva"``.
    cmra: relation-aware module variant (cmran only): cmra | none | self | co | feature_concat.
    visual_attention: agsca | agva | average (cmran only; baselines fix their own).
    interaction: AV-interaction variant (cmran only): cmra | none | self.
    itr_layers: L, the ITR depth (0..4 in the paper's table; also the baselines' encoder depth);
        None = 2 where an ITR is built, and it must stay None where none is (cmra none/self).
    interaction_heads: None = 4 supervised / 2 weak where the AV-interaction attention is built;
        must stay None where it is not (interaction none, baselines).
    visual_proj, visual_dropout: None = True / 0.2 where the model sees the visual map; must stay
        None where it does not (arch audio_only; visual_dropout also with visual_proj=False).
    init: "default" draws every layer on its own; "reference" starts the stacked layers of each ITR
        identical (copies of the first), as the reference code's deep-copied template does.
    """

    setting: str = "supervised"
    features: str = "vgg19"
    arch: str = "cmran"
    cmra: str | None = None
    visual_attention: str | None = None
    interaction: str | None = None
    itr_layers: int | None = None
    num_heads: int = 4
    interaction_heads: int | None = None
    d_model: int = 256
    ffn_dim: int = 2048
    dropout: float = 0.1
    # relation-layer dropout masks: "bit" (avattn.BitDropout: nn.Dropout's distribution, cheaper, other random
    # draws) or "torch" (nn.Dropout, as the reference code); the attention-weight dropout is the backend's
    dropout_impl: str = "bit"
    visual_proj: bool | None = None  # Linear(C_v, 512) + ReLU + Dropout on every cell before the visual attention
    visual_proj_dim: int = 512
    visual_dropout: float | None = None  # after the pre-projection; 0.2
    agva_audio_along_cells: bool = False  # AVEL's code quirk (see docs/cmran.md, AGVA)
    weak_loss_on: str = "scores"  # weak loss on the softmax scores (reference) or on the logits
    backend: str = "auto"  # avattn attention backend
    init: str = "default"  # "reference": each ITR's stacked layers start as copies of its first

    def __post_init__(self) -> None:
        _choice("setting", self.setting, SETTINGS)
        _choice("features", self.features, VISUAL_DIMS)
        _choice("arch", self.arch, ARCHS)
        if self.arch == "cmran":
            _set(self, "cmra", "cmra" if self.cmra is None else self.cmra)
            _set(self, "visual_attention", "agsca" if self.visual_attention is None else self.visual_attention)
            _set(self, "interaction", "cmra" if self.interaction is None else self.interaction)
            _choice("cmra", self.cmra, CMRA_VARIANTS)
            _choice("visual_attention", self.visual_attention, VISUAL_ATTENTIONS)
            _choice("interaction", self.interaction, INTERACTION_VARIANTS)
        else:
            for name in ("cmra", "visual_attention", "interaction"):
                if getattr(self, name) is not None:
                    raise ConfigError(
                        f"{name}={getattr(self, name)!r} is an ablation of arch='cmran' and does not apply to "
                        f"the baseline arch={self.arch!r} (leave it unset)"
                    )
        uses_itr = self.arch != "cmran" or self.cmra in ("cmra", "co", "feature_concat")
        uses_interaction_attention = self.arch == "cmran" and self.interaction != "none"
        for name, used, default, why in (
            ("itr_layers", uses_itr, 2, f"cmra={self.cmra!r} builds no ITR"),
            ("interaction_heads", uses_interaction_attention, INTERACTION_HEADS[self.setting],
             f"arch={self.arch!r}, interaction={self.interaction!r} has no interaction attention"),
        ):
            if used and getattr(self, name) is None:
                _set(self, name, default)
            elif not used and getattr(self, name) is not None:
                raise ConfigError(f"{name}={getattr(self, name)!r} has no effect: {why} (leave it unset)")
        if self.uses_visual and self.visual_proj is None:
            _set(self, "visual_proj", True)
        elif not self.uses_visual and self.visual_proj is not None:
            raise ConfigError(f"visual_proj={self.visual_proj!r} has no effect: arch={self.arch!r} sees no visual "
                              "features (leave it unset)")
        if self.visual_proj and self.visual_dropout is None:
            _set(self, "visual_dropout", 0.2)
        elif not self.visual_proj and self.visual_dropout is not None:
            why = "visual_proj=False" if self.uses_visual else f"arch={self.arch!r} sees no visual features"
            raise ConfigError(f"visual_dropout={self.visual_dropout!r} has no effect: {why} (the dropout follows the "
                              "visual pre-projection; leave it unset)")
        if self.itr_layers is not None:
            _int("itr_layers", self.itr_layers, 0, 16)
        _int("d_model", self.d_model, 1)
        _int("ffn_dim", self.ffn_dim, 1)
        _int("visual_proj_dim", self.visual_proj_dim, 1)
        for name in ("num_heads", "interaction_heads"):
            if getattr(self, name) is None:
                continue
            _int(name, getattr(self, name), 1)
            if self.d_model % getattr(self, name):
                raise ConfigError(f"d_model={self.d_model} must be divisible by {name}={getattr(self, name)}")
        _prob("dropout", self.dropout)
        _choice("dropout_impl", self.dropout_impl, DROPOUT_IMPLS)
        if self.visual_dropout is not None:
            _prob("visual_dropout", self.visual_dropout)
        if not isinstance(self.visual_proj, (bool, type(None))) or not isinstance(self.agva_audio_along_cells, bool):
            raise ConfigError("visual_proj and agva_audio_along_cells must be booleans")
        _choice("weak_loss_on", self.weak_loss_on, WEAK_LOSS_INPUTS)
        if self.weak_loss_on != "scores" and self.setting != "weak":
            raise ConfigError(f"weak_loss_on={self.weak_loss_on!r} applies only to setting='weak'")
        _choice("backend", self.backend, ("auto", "reference", "sdpa", "triton"))
        if self.backend == "triton" and self.dropout > 0:
            raise ConfigError(
                f"backend='triton' applies no attention dropout, but dropout={self.dropout}: "
                "use dropout=0 (--dropout 0) or backend='auto', which picks triton where it can serve"
            )
        if self.agva_audio_along_cells and self.visual_attention != "agva" and self.arch != "audio_visual_agva":
            raise ConfigError("agva_audio_along_cells=True needs visual_attention='agva' (or arch='audio_visual_agva')")
        _choice("init", self.init, INITS)
        if self.init == "reference" and not (uses_itr and self.itr_layers >= 2):
            raise ConfigError(f"init='reference' has no effect: it starts stacked ITR layers identical, but arch="
                              f"{self.arch!r}, cmra={self.cmra!r}, itr_layers={self.itr_layers!r} stacks none (leave init='default')")

    @property
    def visual_dim(self) -> int:
        return VISUAL_DIMS[self.features]

    @property
    def uses_audio(self) -> bool:
        return self.arch != "visual_only"

    @property
    def uses_visual(self) -> bool:
        return self.arch != "audio_only"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = _known(cls, d, "model config")
        d.setdefault("dropout_impl", "torch")  # written before the option existed: those runs used nn.Dropout
        return cls(**d)


@dataclass(frozen=True)
class TrainConfig:
    """The recipe: Adam, MultiStepLR, gradient-norm clipping; model selection on val.

    ``None`` fields are the model's reference recipe (``RECIPES``), filled by ``resolve``: CMRAN 200
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

    def resolve(self, setting: str, model: str = "cmran") -> TrainConfig:
        """Fill the model's and setting's recipe defaults, then validate."""
        if (model, setting) not in RECIPES:
            raise ConfigError(f"model {model!r} has no {setting!r} recipe; models and settings: {sorted(RECIPES)}")
        recipe = RECIPES[(model, setting)]
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
        _int("epochs", self.epochs, 1)
        _int("batch_size", self.batch_size, 1)
        _int("eval_batch_size", self.eval_batch_size, 1)
        _positive("lr", self.lr)
        _positive("lr_gamma", self.lr_gamma)
        if self.lr_milestones is not None:
            ms = list(self.lr_milestones)
            for m in ms:
                _int("lr_milestones[i]", m, 1)
            if ms != sorted(set(ms)):
                raise ConfigError(f"lr_milestones must be strictly increasing, got {ms}")
        if self.grad_clip is not None and (
            isinstance(self.grad_clip, bool) or not isinstance(self.grad_clip, (int, float)) or not self.grad_clip >= 0
        ):
            raise ConfigError(f"grad_clip must be >= 0 (0 disables clipping), got {self.grad_clip!r}")
        _choice("lr_unit", self.lr_unit, LR_UNITS)
        if not isinstance(self.shuffle, bool):
            raise ConfigError(f"shuffle must be a boolean, got {self.shuffle!r}")
        _choice("select_on", self.select_on, SELECTIONS)
        _int("seed", self.seed, 0, SEED_MAX)
        if self.data_seed is not None:
            if self.data != "synthetic":
                raise ConfigError(f"data_seed applies only to data='synthetic', got data={self.data!r}")
            _int("data_seed", self.data_seed, 0, SEED_MAX)
        _choice("amp", self.amp, AMP_MODES)
        _choice("adam_impl", self.adam_impl, ADAM_IMPLS)
        if not isinstance(self.tf32, bool) or not isinstance(self.compile, bool):
            raise ConfigError(f"tf32 and compile must be booleans, got {self.tf32!r}, {self.compile!r}")
        _int("num_workers", self.num_workers, 0)
        if self.max_steps is not None:
            _int("max_steps", self.max_steps, 1)
        if self.subset is not None:
            _int("subset", self.subset, 1)
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
        d = _known(cls, d, "train config")
        d.setdefault("lr_unit", "epoch")  # written before lr_unit existed: CMRAN's epoch milestones
        d.setdefault("adam_impl", "for")  # written before the option existed: torch's default Adam (CPU)
        if d.get("lr_milestones") is not None:
            d["lr_milestones"] = tuple(d["lr_milestones"])
        return cls(**d)


# Train-config fields that may change when a run is resumed (everything else must match).
# adam_impl: the same update rule in another implementation (rounding differs, the optimizer state does not).
RESUMABLE_CHANGES = (
    "epochs", "out", "device", "num_workers", "compile", "tf32", "eval_batch_size", "data", "adam_impl",
)


def _known(cls, d: dict, what: str) -> dict:
    if not isinstance(d, dict):
        raise ConfigError(f"{what} must be a dict, got {type(d).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"{what} has unknown fields {unknown} (written by another version?)")
    return dict(d)
