"""Runs `train` from a script, for the multi-process tests: Lightning's launcher starts the
other processes by running this same command line again, which a pytest process cannot be.

    python tests/ddp_driver.py CONFIG_JSON [--crash-at-epoch N] [--resume CKPT]
"""

from __future__ import annotations

import argparse
import json
import sys

import lightning as L

from scenes.config import load_config
from scenes.training import train


class CrashAtEpoch(L.Callback):
    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("overrides", help="config overrides as a JSON object")
    parser.add_argument("--crash-at-epoch", type=int)
    parser.add_argument("--resume")
    args = parser.parse_args()
    cfg = load_config(overrides=json.loads(args.overrides))
    callbacks = [CrashAtEpoch(args.crash_at_epoch)] if args.crash_at_epoch is not None else []
    result = train(cfg, resume=args.resume, extra_callbacks=callbacks)
    if result.is_global_zero:
        print(json.dumps({"best_epoch": result.best_epoch, "best": result.best}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
