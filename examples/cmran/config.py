"""CMRAN's architecture (``CMRANConfig``) and its reference recipe (``RECIPES``).

The config is a validated frozen dataclass: a bad or incompatible value raises ``ConfigError`` naming the
field, the value and what is allowed, before any work is done. ``None`` fields mean "the paper's choice for
this setting" and are resolved on construction, so a config written to ``config.json`` reads back to the
same object.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from avattn import CMRA_VARIANTS, DROPOUT_IMPLS, INTERACTION_VARIANTS
from avattn.functional import BACKENDS
from examples.ave.checks import ConfigError, check_choice, check_int, check_probability, known_fields
from examples.ave.constants import SETTINGS, VISUAL_DIMS

ARCHS = ("cmran", "audio_only", "visual_only", "audio_visual", "audio_visual_agva")
VISUAL_ATTENTIONS = ("agsca", "agva", "average")
WEAK_LOSS_INPUTS = ("scores", "logits")
INITS = ("default", "reference")

# The reference implementation's recipe (Xu et al., ACM MM 2020), per setting.
INTERACTION_HEADS = {"supervised": 4, "weak": 2}
LR_MILESTONES = {"supervised": (10, 20, 30), "weak": (5, 20, 40)}
GRAD_CLIP = {"supervised": 0.1, "weak": 0.5}
RECIPES = {
    ("cmran", s): {"epochs": 200, "batch_size": 32, "lr": 5e-4, "lr_milestones": LR_MILESTONES[s],
                   "lr_gamma": 0.5, "lr_unit": "epoch", "grad_clip": GRAD_CLIP[s]}
    for s in SETTINGS
}


def _set(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class CMRANConfig:
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
        check_choice("setting", self.setting, SETTINGS)
        check_choice("features", self.features, VISUAL_DIMS)
        check_choice("arch", self.arch, ARCHS)
        if self.arch == "cmran":
            _set(self, "cmra", "cmra" if self.cmra is None else self.cmra)
            _set(self, "visual_attention", "agsca" if self.visual_attention is None else self.visual_attention)
            _set(self, "interaction", "cmra" if self.interaction is None else self.interaction)
            check_choice("cmra", self.cmra, CMRA_VARIANTS)
            check_choice("visual_attention", self.visual_attention, VISUAL_ATTENTIONS)
            check_choice("interaction", self.interaction, INTERACTION_VARIANTS)
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
            check_int("itr_layers", self.itr_layers, 0, 16)
        check_int("d_model", self.d_model, 1)
        check_int("ffn_dim", self.ffn_dim, 1)
        check_int("visual_proj_dim", self.visual_proj_dim, 1)
        for name in ("num_heads", "interaction_heads"):
            if getattr(self, name) is None:
                continue
            check_int(name, getattr(self, name), 1)
            if self.d_model % getattr(self, name):
                raise ConfigError(f"d_model={self.d_model} must be divisible by {name}={getattr(self, name)}")
        check_probability("dropout", self.dropout)
        check_choice("dropout_impl", self.dropout_impl, DROPOUT_IMPLS)
        if self.visual_dropout is not None:
            check_probability("visual_dropout", self.visual_dropout)
        if not isinstance(self.visual_proj, (bool, type(None))) or not isinstance(self.agva_audio_along_cells, bool):
            raise ConfigError("visual_proj and agva_audio_along_cells must be booleans")
        check_choice("weak_loss_on", self.weak_loss_on, WEAK_LOSS_INPUTS)
        if self.weak_loss_on != "scores" and self.setting != "weak":
            raise ConfigError(f"weak_loss_on={self.weak_loss_on!r} applies only to setting='weak'")
        check_choice("backend", self.backend, BACKENDS)
        if self.backend == "triton" and self.dropout > 0:
            raise ConfigError(
                f"backend='triton' applies no attention dropout, but dropout={self.dropout}: "
                "use dropout=0 (--dropout 0) or backend='auto', which picks triton where it can serve"
            )
        if self.agva_audio_along_cells and self.visual_attention != "agva" and self.arch != "audio_visual_agva":
            raise ConfigError("agva_audio_along_cells=True needs visual_attention='agva' (or arch='audio_visual_agva')")
        check_choice("init", self.init, INITS)
        if self.init == "reference" and not (uses_itr and self.itr_layers >= 2):
            raise ConfigError(f"init='reference' has no effect: it starts stacked ITR layers identical, but arch="
                              f"{self.arch!r}, cmra={self.cmra!r}, itr_layers={self.itr_layers!r} stacks none (leave init='default')")

    @property
    def model(self) -> str:
        """The ``--model`` name (not a field: CMRAN's config dicts predate the other models)."""
        return "cmran"

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
    def from_dict(cls, d: dict) -> CMRANConfig:
        d = {k: v for k, v in d.items() if k != "model"} if isinstance(d, dict) and d.get("model") == "cmran" else d
        d = known_fields(cls, d, "model config")
        d.setdefault("dropout_impl", "torch")  # written before the option existed: those runs used nn.Dropout
        return cls(**d)
