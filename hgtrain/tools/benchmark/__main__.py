"""``python -m hgtrain.tools.benchmark``: the same as ``hgtrain benchmark``."""

import sys

from hgtrain.tools.benchmark.command import main

main(sys.argv[1:])
