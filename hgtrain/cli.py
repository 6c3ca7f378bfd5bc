"""The ``hgtrain`` command."""

from __future__ import annotations

import argparse

from hgtrain import __version__


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``hgtrain`` console script."""
    parser = argparse.ArgumentParser(prog="hgtrain", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hgtrain {__version__}")
    parser.parse_args(args)
    parser.print_help()
