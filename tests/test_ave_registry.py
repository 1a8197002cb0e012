"""Adding a model is one folder and one registry line: a tiny model registered here trains, evaluates and
predicts through the CLI like the shipped ones; the registry refuses clashing names."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from cli_checks import one_thread, run, single_process  # noqa: F401  (fixtures act where imported)
from torch import nn

from examples.ave import registry
from examples.ave.constants import AUDIO_DIM, NUM_CLASSES, VISUAL_DIMS


# ---- the whole model: config, module, recipe, registration (under 40 lines) ----
@dataclass(frozen=True)
class TinyConfig:
    model: str = "tiny"
    setting: str = "supervised"
    features: str = "vgg19"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TinyConfig:
        return cls(**d)


class TinyOutput(NamedTuple):
    segment_logits: torch.Tensor


class Tiny(nn.Module):
    def __init__(self, config: TinyConfig, *, device=None, dtype=None) -> None:
        super().__init__()
        self.config = config
        self.head = nn.Linear(VISUAL_DIMS[config.features] + AUDIO_DIM, NUM_CLASSES, device=device, dtype=dtype)

    def forward(self, visual, audio):  # (B, T, H, W, C), (B, T, A) -> (B, T, K)
        return TinyOutput(self.head(torch.cat([visual.flatten(2, -2).mean(2), audio], -1)))

    def loss(self, output, segment_labels, video_labels):
        return F.cross_entropy(output.segment_logits.flatten(0, 1), segment_labels.flatten())

    predict = staticmethod(lambda output: output.segment_logits.argmax(-1))
    relevance = staticmethod(lambda output: output.segment_logits.softmax(-1).amax(-1))


TINY = registry.ModelFamily(
    names=("tiny",), config_class=TinyConfig, model_class=Tiny,
    recipes={("tiny", "supervised"): {"epochs": 2, "batch_size": 4, "lr": 1e-2, "lr_milestones": (10,),
                                      "lr_gamma": 0.5, "lr_unit": "epoch", "grad_clip": 0.0}},
    config_from_args=lambda args, name: TinyConfig(setting=args.setting, features=args.features),
)
# ---- end of the model ----


@pytest.fixture
def tiny_registered():
    registry.register(TINY)
    yield
    registry.unregister(TINY)


def test_a_registered_model_trains_evaluates_and_predicts_through_the_cli(capsys, tmp_path, tiny_registered):
    out = tmp_path / "run"
    code, text, err = run(capsys, "train", "--model", "tiny", "--subset", "8", "--max-steps", "1", "--out", out)
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    assert result["model"] == "tiny" and result["epochs"] == 2 and "visualize" not in text  # no figures to draw
    code, text, err = run(capsys, "evaluate", "--checkpoint", out / "best.pt", "--json")
    assert code == 0 and json.loads(text)["accuracy"] == pytest.approx(result["test_acc"])
    code, text, err = run(capsys, "predict", "--checkpoint", out / "best.pt", "--out", tmp_path / "events.jsonl")
    records = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert code == 0 and len(records) == 8 and all(r["split"] == "test" for r in records)
    code, _, err = run(capsys, "train", "--model", "tiny", "--arch", "audio_only", "--out", tmp_path / "other")
    assert code == 2 and "--arch applies to --model cmran only, not --model tiny" in err


def test_a_model_without_the_asked_setting_is_refused(capsys, tmp_path, tiny_registered):
    code, _, err = run(capsys, "train", "--model", "tiny", "--setting", "weak", "--out", tmp_path / "run")
    assert code == 2 and "model 'tiny' has no 'weak' recipe" in err


def test_a_name_served_already_is_refused():
    clash = registry.ModelFamily(names=("psp",), config_class=TinyConfig, model_class=Tiny, recipes={})
    with pytest.raises(ValueError, match=r"model names \['psp'\] are registered already"):
        registry.register(clash)


def test_every_shipped_model_is_served_by_its_own_folder():
    assert registry.model_names() == ("cmran", "avel", "avel-dmrn", "psp")
    for name in registry.model_names():
        family = registry.family(name)
        assert family.model_class.__module__ == f"examples.{name.split('-')[0]}.model"
        assert {n for n, _ in family.recipes} == set(family.names)
