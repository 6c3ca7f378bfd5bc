"""Command-line parsing of the tools (``hgtrain export``, ``benchmark``, ``data-benchmark``,
``data-preview``), in the style of the Lightning subcommands: jsonargparse, option names with
underscores (``--batch_size``), switches that take a value (``--channels_last true``) and
``--config FILE`` for any of the options from a YAML file.
"""

from __future__ import annotations

import re
from typing import Any, NoReturn

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

EPILOG = (
    "Switches take a value, as in the Lightning subcommands: --NAME true or --NAME false. "
    "--config FILE reads any of the options from a YAML file, keys named as the options without "
    "'--'; options after --config override the file."
)


class OptionError(ValueError):
    """A bad value of one option; reads ``name=value: problem``."""

    def __init__(self, name: str, value: Any, problem: str) -> None:
        super().__init__(f"{name}={value}: {problem}")


class ToolParser(ArgumentParser):
    """A jsonargparse parser with ``--config FILE`` whose errors are one line, ``prog: message``,
    with exit status 2. Takes ``ArgumentParser``'s arguments (jsonargparse makes inner parsers of
    the same class with them)."""

    def __init__(self, *args: Any, epilog: str | None = EPILOG, **kwargs: Any) -> None:
        super().__init__(*args, epilog=epilog, **kwargs)
        self.add_argument(
            "--config", action=ActionConfigFile, help="YAML file with any of the options below"
        )

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """Exit after ``prog: message`` on one line, a jsonargparse key shown as its option."""
        if not self.exit_on_error:
            super().error(message, ex)
        message = re.sub(r'Parser key "([^"]+)":\s*', r"--\1: ", message)
        self.exit(2, f"{self.prog}: {' '.join(message.split())}\n")

    def check_at_least(self, options: Namespace, **minimums: int) -> None:
        """``error`` naming the first option below its minimum (each item, for a list; None passes)."""
        for name, minimum in minimums.items():
            value = options[name]
            for item in value if isinstance(value, list) else [value]:
                if item is not None and item < minimum:
                    self.error(f"--{name}={item}: must be >= {minimum}")
