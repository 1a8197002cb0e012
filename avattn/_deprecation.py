"""Old names that keep working for one release: keywords, attributes and module-level names.

Each use of an old name warns with a ``DeprecationWarning`` naming the new one; passing an old
keyword together with its new name is a ``TypeError``. Removal is due in avattn 0.2. Inside
``torch.compile`` (which cannot trace ``warnings.warn``) an old keyword is mapped without a warning,
so ``fullgraph=True`` still holds; the eager call warns.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import torch

REMOVED_IN = "avattn 0.2"
_AVATTN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_TORCH_MODULE_FILE = os.path.join("torch", "nn", "modules", "module.py")


def _stacklevel() -> int:
    """The stack level of the first caller outside avattn and torch's Module.__call__ (the user's line)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and (
        frame.f_code.co_filename.startswith(_AVATTN_DIR) or frame.f_code.co_filename.endswith(_TORCH_MODULE_FILE)
    ):
        frame, level = frame.f_back, level + 1
    return level


def warn_deprecated(old: str, new: str, what: str) -> None:
    """``DeprecationWarning``: ``what`` ``old`` is deprecated, use ``new``; attributed to the user's line."""
    if torch.compiler.is_compiling():
        return
    warnings.warn(
        f"{what} {old!r} is deprecated and will be removed in {REMOVED_IN}; use {new!r}",
        DeprecationWarning,
        stacklevel=_stacklevel(),
    )


def renamed_keywords(**renames: str | tuple[str, Callable[[Any], Any]]):
    """Decorator: accept old keyword names, warn, and pass the value on under the new name.

    ``renames`` maps old -> new, or old -> (new, convert) where ``convert`` turns an old-style value
    into a new-style one. The wrapped function keeps its signature and docstring (``help``,
    ``inspect.signature``). Without old keywords the wrapper costs one dict lookup per name.
    """

    def decorate(fn):
        owner = fn.__qualname__.rsplit(".", 1)[0] if fn.__name__ == "__init__" else fn.__qualname__

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for old, target in renames.items():
                if old in kwargs:
                    new, convert = target if isinstance(target, tuple) else (target, None)
                    if new in kwargs:
                        raise TypeError(
                            f"{owner} got both {old!r} (deprecated) and {new!r}: pass {new!r} only"
                        )
                    value = kwargs.pop(old)
                    warn_deprecated(old, new, f"{owner}: keyword")
                    kwargs[new] = value if convert is None else convert(value)
            return fn(*args, **kwargs)

        return wrapper

    return decorate


def renamed_attribute(old: str, new: str) -> property:
    """A read-only property ``old`` that warns and returns ``self.<new>``."""

    def get(self):
        warn_deprecated(old, new, f"{type(self).__name__}: attribute")
        return getattr(self, new)

    return property(get, doc=f"Deprecated alias of ``{new}`` (removed in {REMOVED_IN}).")


def module_getattr(module: str, aliases: dict[str, tuple[str, Any]]):
    """A module ``__getattr__`` serving old names: ``aliases`` maps old -> (new name, object)."""

    def __getattr__(name: str):
        if name in aliases:
            new, obj = aliases[name]
            warn_deprecated(name, new, f"{module}:")
            return obj
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
