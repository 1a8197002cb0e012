"""``python -m examples.cmran <subcommand> ...``: the AVE pipeline (``examples.ave``), CMRAN by default."""

from __future__ import annotations

import sys

from examples.ave.cli import main as pipeline_main


def main(argv: list[str] | None = None) -> int:
    return pipeline_main(argv, module="examples.cmran")


if __name__ == "__main__":
    sys.exit(main())
