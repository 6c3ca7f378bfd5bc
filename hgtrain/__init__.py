"""hgtrain: train the stacked-hourglass backbones of the CornerNet family with PyTorch Lightning."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hgtrain")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
