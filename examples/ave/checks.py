"""Option checks shared by the pipeline and the model folders: each error names the option, the value and
what is allowed, before any work is done."""

from __future__ import annotations

import errno
import math
import os
from dataclasses import fields

SEED_MAX = 2**63 - 1  # torch and numpy seeds are 64-bit; a seed above this cannot be used


class ConfigError(ValueError):
    """An invalid or incompatible configuration value (the CLI exits with status 2)."""


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_int(name: str, value, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"{name} must be an integer {rng}, got {value!r}")


def check_probability(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be a probability in [0, 1), got {value!r}")


def check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be a finite positive number, got {value!r}")


def check_bool_or_none(name: str, value) -> None:
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"{name} must be True, False or unset, got {value!r}")


def fill_default(obj, name: str, used: bool, default, why: str) -> None:
    """In a frozen config: fill ``name`` with ``default`` where it applies; refuse a value where it does not."""
    if used and getattr(obj, name) is None:
        object.__setattr__(obj, name, default)
    elif not used and getattr(obj, name) is not None:
        raise ConfigError(f"{name}={getattr(obj, name)!r} has no effect: {why} (leave it unset)")


def known_fields(cls, d: dict, what: str) -> dict:
    """A copy of ``d`` after checking that it is a dict of ``cls``'s fields only."""
    if not isinstance(d, dict):
        raise ConfigError(f"{what} must be a dict, got {type(d).__name__}")
    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise ConfigError(f"{what} has unknown fields {unknown} (written by another version?)")
    return dict(d)


def check_out_dir(out, flag: str = "--out") -> None:
    """``out`` can be (or become) a writable directory: not empty, not a file, not under a file, not a
    symbolic link that leads nowhere (a loop, a missing target)."""
    if not isinstance(out, (str, os.PathLike)) or not os.fspath(out):
        raise ConfigError(f"{flag} must name a directory, got {out!r} (an empty path would write into the "
                          "working directory)")
    path = os.path.abspath(os.fspath(out))
    _check_links(out, path, flag)
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


def _check_links(out, path: str, flag: str) -> None:
    """Refuse a path through a symbolic link that resolves to nothing (os.path.exists is False for it, and
    creating the folder would fail with 'File exists')."""
    probe = path
    while probe != os.path.dirname(probe):
        if os.path.islink(probe) and not os.path.exists(probe):
            try:
                os.stat(probe)
            except OSError as exc:
                why = "a loop of symbolic links" if exc.errno == errno.ELOOP else \
                    f"a symbolic link to the missing {os.readlink(probe)!r}"
                where = "is" if probe == path else f"lies under {probe!r}, which is"
                raise ConfigError(f"{flag} {os.fspath(out)!r} {where} {why}, expected a directory "
                                  "(or a path to create one)") from None
        probe = os.path.dirname(probe)


def check_json_values(what: str, record: dict) -> None:
    """Every value of ``record`` (nested) can be written to strict JSON: a NaN or infinity is refused by name
    (``what.field``) before anything is written."""
    for key, value in record.items():
        name = f"{what}.{key}"
        if isinstance(value, dict):
            check_json_values(name, value)
        elif isinstance(value, (list, tuple)):
            check_json_values(name, {f"[{i}]": v for i, v in enumerate(value)})
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r} (the run's config.json could not "
                              "hold it)")


def check_data(data: str) -> None:
    """``data`` is 'synthetic' or an existing directory (the AVE release layout)."""
    if data != "synthetic" and not os.path.isdir(data):
        raise ConfigError(f"data directory {data!r} does not exist: no such directory "
                          "(pass 'synthetic' or the AVE release directory)")
