"""``python -m examples.ave <subcommand> ...``: see ``examples.ave.cli``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(module="examples.ave"))
