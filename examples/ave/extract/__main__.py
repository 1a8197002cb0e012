"""``python -m examples.ave.extract --videos DIR --out FEATS ...`` (see cli.py); exit status 2 for a bad option,
1 when a video failed, 130 on Ctrl-C (no file is left half-written)."""

from __future__ import annotations

import argparse
import os
import sys

from .cli import add_arguments
from .cli import main as run_main
from .errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.ave.extract",
                                     description="Video files to AVE features (the release layout).")
    add_arguments(parser)
    args = parser.parse_args(argv)
    quiet = os.environ.get("RANK", "0") != "0"
    try:
        return int(run_main(args) or 0)
    except ConfigError as exc:
        if quiet:
            return 2
        parser.error(str(exc))
    except KeyboardInterrupt:
        if not quiet:
            print("interrupted: extract stopped; finished videos are kept in OUT/.extract, no file is half-written",
                  file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
