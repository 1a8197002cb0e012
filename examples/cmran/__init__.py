"""CMRAN (Xu et al., ACM MM 2020) on the AVE pipeline: its config, model, CLI flags, reference key map and
figures. ``python -m examples.cmran`` runs the pipeline (``examples.ave``) with CMRAN as the default model."""

from .family import FAMILY

__all__ = ["FAMILY"]
