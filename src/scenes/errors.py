"""Errors that mean "the user asked for something that cannot work": shown as one message.

They live here, with no imports, so that the CLI can catch them without importing torch,
Lightning or matplotlib: a command that does not train must start in well under a second.
The modules that raise them re-export them where they were defined before.
"""


class ConfigError(ValueError):
    """A config value is unknown, of the wrong type or out of range."""


class DataError(ValueError):
    """The data folder cannot be used as it is; the message says what to do."""


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could neither be found locally nor downloaded."""


class RunDirError(ValueError):
    """The run directory would overwrite another run, or does not hold what a command needs."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    DataError,
    WeightsUnavailableError,
    RunDirError,
    FileNotFoundError,
    ValueError,
)
