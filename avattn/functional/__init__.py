"""Functional attention API: ``cmra_attention`` and its backends.

``BACKENDS``: every value of a ``backend`` argument (``"auto"``, ``"reference"``, ``"sdpa"``,
``"triton"``), for an option's choices; ``AUTO_ORDER``: the order in which ``"auto"`` tries them;
``SUPPORT``: what each one serves. ``reference_attention`` and ``sdpa_attention`` are the backends
themselves and take checked input: call ``cmra_attention`` for the checks.
"""

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
