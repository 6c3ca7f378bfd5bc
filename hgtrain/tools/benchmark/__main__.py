"""``python -m hgtrain.benchmark``: the same as ``hgtrain benchmark``."""

import sys

from hgtrain.benchmark.cli import main

main(sys.argv[1:])
