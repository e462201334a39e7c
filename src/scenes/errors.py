"""Errors that mean "the user asked for something that cannot work": shown as one message.

They live here, with no imports, so that the CLI can catch them without importing torch,
Lightning or matplotlib: a command that does not train must start in well under a second.

Every such error is a ``UserError``; the CLI prints its message and exits 2. Anything else
(a bare ``ValueError`` included) is a bug and is shown with its traceback. Each type also
derives from the built-in exception it replaces, so ``except ValueError`` keeps working.
"""


class UserError(Exception):
    """Something the user asked for cannot work; the message names it and says what to do."""


class ConfigError(UserError, ValueError):
    """A config value is unknown, of the wrong type or out of range."""


class DataError(UserError, ValueError):
    """The data folder cannot be used as it is; the message says what to do."""


class WeightsUnavailableError(UserError, RuntimeError):
    """Pretrained weights could neither be found locally nor downloaded."""


# How `scenes train` can do without downloaded weights: the last words of every "weights
# unavailable" message. Commands with other options (data issues) replace them with their own.
TRAIN_WEIGHTS_FIXES = (
    "or pass --weights FILE (a local state-dict file), or train from scratch with --no-pretrained."
)


class RunDirError(UserError, ValueError):
    """The run directory would overwrite another run, or does not hold what a command needs."""


class BundleError(UserError, ValueError):
    """A model bundle (``model/``) is missing, damaged, or holds values that cannot be right."""


class UnsafeFileError(UserError, ValueError):
    """A file from elsewhere (a checkpoint) holds code, not just data: it is not loaded."""


class UsageError(UserError, ValueError):
    """An option's value, or a combination of options, cannot work."""


class MissingPathError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist (or is the wrong kind of thing)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training was stopped by Ctrl-C; what was done is kept.

    ``run_dir`` is the run's folder; ``bundle`` the model folder written from the best
    checkpoint so far (None when no epoch had finished); ``resume_from`` the checkpoint to
    continue from (None when there is none). In the other processes of a multi-process run
    ``is_global_zero`` is False and nothing else is set: the first process reports.
    """

    def __init__(
        self, run_dir, bundle=None, best_epoch=None, resume_from=None, *, is_global_zero=True
    ):
        super().__init__("training interrupted")
        self.run_dir = run_dir
        self.bundle = bundle
        self.best_epoch = best_epoch
        self.resume_from = resume_from
        self.is_global_zero = is_global_zero


USER_ERRORS: tuple[type[BaseException], ...] = (UserError,)
