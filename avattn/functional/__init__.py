"""Functional attention API: ``cmra_attention`` and its backends."""

from .attention import cmra_attention
from .backends import AUTO_ORDER, BACKENDS, SUPPORT, BackendSupport, select_backend
from .reference import reference_attention
from .sdpa import sdpa_attention

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "SUPPORT",
    "BackendSupport",
    "cmra_attention",
    "reference_attention",
    "sdpa_attention",
    "select_backend",
]
