"""``python -m hgtrain.tools.repeatability``: the same as ``hgtrain repeatability``."""

import sys

from hgtrain.tools.repeatability.evaluation import main

main(sys.argv[1:])
