"""Errors that mean "the user asked for something that cannot work": shown as one message."""

from .config import ConfigError
from .data.discover import DataError
from .models.registry import WeightsUnavailableError
from .training.run import RunDirError

USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    DataError,
    WeightsUnavailableError,
    RunDirError,
    FileNotFoundError,
    ValueError,
)
