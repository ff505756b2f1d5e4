"""``python -m lfi_gym``: the ``lfi-gym`` command line, for when the script is not on PATH."""

import sys

from lfi_gym.cli import main

if __name__ == "__main__":
    sys.exit(main())
