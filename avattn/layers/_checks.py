"""Deprecated: the checks moved to ``avattn._checks`` (one module for layers, losses, metrics and the
attention API); a model's own dtype check is public as ``avattn.check_input_dtypes``.

Each name below still works until avattn 0.2, with a ``DeprecationWarning`` naming its new place.
"""

import importlib

from .._deprecation import module_getattr

_checks = importlib.import_module("avattn._checks")  # the module itself: its names stay out of this one

_MOVED = (
    "check_sequence_features", "check_same_batch_time", "check_same_batch", "check_memory", "check_visual_map",
    "check_positive_int", "check_nonnegative_int", "check_divisor", "check_dropout", "check_positive", "check_choice",
)
__getattr__ = module_getattr(
    "avattn.layers._checks",
    {"check_input_dtypes": ("avattn.check_input_dtypes", _checks.check_input_dtypes)}
    | {name: (f"avattn._checks.{name}", getattr(_checks, name)) for name in _MOVED},
)
