"""AVEL's architecture (``AVELConfig``) and its reference recipes (``RECIPES``); docs/avel.md."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from examples.ave.checks import ConfigError, check_bool_or_none, check_choice, check_int, fill_default, known_fields
from examples.ave.constants import SETTINGS, VISUAL_DIMS

LSTM_HIDDEN = 128
AVEL_MODELS = ("avel", "avel-dmrn")
AVEL_VARIANTS = ("av_att", "av", "v_att", "v", "a")  # the paper's A+V-att, A+V, V-att, V, A
AVEL_LOSSES = ("reference", "cross_entropy")
MIL_POOLINGS = ("max", "mean")


@dataclass(frozen=True)
class AVELConfig:
    """AVEL's architecture. Defaults are the reference code's models.

    model: "avel" (concatenation head) or "avel-dmrn" (DMRN fusion, supervised only).
    variant: the paper's row (avel only): "av_att" (the reference's), or the reconstructions
        "av", "v_att", "v", "a".
    agva_audio_along_cells: None = True (the code's cell-axis audio term) where AGVA is built;
        False = the paper's equation.
    mil_pooling: weak only; None = "max" (the code); "mean" (the paper's wording).
    loss: "reference" (MultiLabelSoftMarginLoss on the softmax outputs) or "cross_entropy" (the
        paper's wording: per segment, or on the pooled video logits when weak).
    dmrn_blocks, dmrn_swap_residuals: avel-dmrn only; None = 1 block, True (the code's residual order).
    """

    model: str = "avel"
    setting: str = "supervised"
    features: str = "vgg19"
    variant: str = "av_att"
    agva_audio_along_cells: bool | None = None
    mil_pooling: str | None = None
    loss: str = "reference"
    dmrn_blocks: int | None = None
    dmrn_swap_residuals: bool | None = None

    def __post_init__(self) -> None:
        check_choice("model", self.model, AVEL_MODELS)
        check_choice("setting", self.setting, SETTINGS)
        check_choice("features", self.features, VISUAL_DIMS)
        check_choice("variant", self.variant, AVEL_VARIANTS)
        dmrn = self.model == "avel-dmrn"
        if dmrn and self.setting != "supervised":
            raise ConfigError("model='avel-dmrn' has no weak setting (the reference trains DMRN supervised only); "
                              "use model='avel' for the weak W-A+V-att")
        if dmrn and self.variant != "av_att":
            raise ConfigError(f"variant={self.variant!r} applies to model='avel' only: DMRN fuses the attended "
                              "audio-visual streams (leave variant='av_att')")
        check_bool_or_none("agva_audio_along_cells", self.agva_audio_along_cells)
        check_bool_or_none("dmrn_swap_residuals", self.dmrn_swap_residuals)
        fill_default(self, "agva_audio_along_cells", self.uses_agva, True, f"variant={self.variant!r} has no AGVA")
        fill_default(self, "mil_pooling", self.setting == "weak", "max", "MIL pooling is for setting='weak'")
        fill_default(self, "dmrn_blocks", dmrn, 1, "model='avel' has no DMRN")
        fill_default(self, "dmrn_swap_residuals", dmrn, True, "model='avel' has no DMRN")
        if self.mil_pooling is not None:
            check_choice("mil_pooling", self.mil_pooling, MIL_POOLINGS)
        if self.dmrn_blocks is not None:
            check_int("dmrn_blocks", self.dmrn_blocks, 1, 16)
        check_choice("loss", self.loss, AVEL_LOSSES)

    @property
    def visual_dim(self) -> int:
        return VISUAL_DIMS[self.features]

    @property
    def uses_agva(self) -> bool:
        return self.variant in ("av_att", "v_att")

    @property
    def uses_audio(self) -> bool:
        return self.variant in ("av_att", "av", "a")

    @property
    def uses_visual(self) -> bool:
        return self.variant != "a"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> AVELConfig:
        return cls(**known_fields(cls, d, "model config"))


# The reference scripts' recipes. AVEL: StepLR(15,000 iterations, x0.1) stepped before each update, so update
# 15,000 is the first at 1e-4: here the scheduler steps after each update, hence 14,999.
RECIPES = {
    ("avel", "supervised"): {"epochs": 300, "batch_size": 64, "lr": 1e-3, "lr_milestones": (14999,),
                             "lr_gamma": 0.1, "lr_unit": "step", "grad_clip": 0.0},
}
RECIPES[("avel", "weak")] = {**RECIPES[("avel", "supervised")], "epochs": 250}
RECIPES[("avel-dmrn", "supervised")] = RECIPES[("avel", "supervised")]
