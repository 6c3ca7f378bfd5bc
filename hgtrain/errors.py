"""The errors a bad argument value raises: they name the argument, the value and the rule."""

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


class SettingsError(ValueError):
    """A settings dataclass (``SceneConfig``, ``PhotometricNoise``) refuses one of its values.

    The CLI builds these dataclasses inside its parser, which wraps whatever they raise; this
    type lets it find the refusal again and print it as one line naming the argument.

    Args:
        settings: the dataclass's name.
        message: what is wrong and what to give instead.
    """

    def __init__(self, settings: str, message: str) -> None:
        self.settings = settings
        super().__init__(message)


def find_settings_error(error: BaseException) -> SettingsError | None:
    """The :class:`SettingsError` that ``error`` was raised from, if any (its causes, in turn)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, SettingsError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
