"""The error a bad argument value raises: it names the argument, the value and the rule."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """``data.batch_size=-4: must be >= 1``: one line that says what to change.

    Args:
        group: the config group of the argument (``"data"``, ``"model"``), as in the CLI.
        name: the argument.
        value: the value given.
        rule: what the value must be.
    """

    def __init__(self, group: str, name: str, value: Any, rule: str) -> None:
        self.key = f"{group}.{name}"
        self.value = value
        super().__init__(f"{self.key}={value!r}: {rule}")


def check(condition: bool, group: str, name: str, value: Any, rule: str) -> None:
    """Raise :class:`ConfigError` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(group, name, value, rule)
