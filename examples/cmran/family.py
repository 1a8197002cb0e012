"""CMRAN's registration with the AVE pipeline (``examples.ave.registry``)."""

from __future__ import annotations

from examples.ave.registry import ModelFamily

from . import options
from .ablations import SWEEP
from .config import RECIPES, CMRANConfig
from .figures import figures
from .model import CMRAN, describe
from .reference import REFERENCES

FAMILY = ModelFamily(
    names=("cmran",),
    config_class=CMRANConfig,
    model_class=CMRAN,
    recipes=RECIPES,
    add_arguments=options.add_arguments,
    config_from_args=options.config_from_args,
    title="CMRAN ablations (CMRAN paper, Tables 3-5; --model cmran only)",
    references=REFERENCES,
    figures=figures,
    sweep=SWEEP,
    describe=describe,
)
