"""Types of command-line values: each refuses, in the parser, what its option cannot take, so a
batch size of 0 is an error naming ``--batch-size``, not a traceback from deep inside."""

from __future__ import annotations

import argparse


def at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``, refused by the parser with the option's
    name otherwise (a batch size of 0 must not reach ``range()``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


positive = at_least(1)


def positive_or_auto(text: str) -> int | str:
    """``--batch-size``: a count, or auto (the batch-size finder, CUDA only)."""
    return "auto" if text.strip().lower() == "auto" else positive(text)


def port_number(text: str) -> int:
    value = positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 1..65535, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def devices(text: str) -> int | list[int] | str:
    """``4`` -> 4, ``0,2`` -> [0, 2], ``auto`` -> "auto"."""
    if text == "auto":
        return text
    try:
        return int(text) if "," not in text else [int(i) for i in text.split(",") if i]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count, comma-separated GPU ids or auto, got {text!r}"
        ) from None


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value
