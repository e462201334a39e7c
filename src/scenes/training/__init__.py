"""Training: the LightningModule, callbacks, LR schedules and the ``train`` entry point."""

from .run import TrainResult, train

__all__ = ["TrainResult", "train"]
