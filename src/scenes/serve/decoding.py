"""Decoding the next batch while the network runs on this one.

On a GPU the network and the decoding use different hardware, so one thread decoding a batch
ahead keeps both busy (Pillow and the backends release the GIL). On a CPU they share the cores:
measured on 2 cores (``benchmarks/predict_scale.py``), decoding ahead neither gains nor loses.
The answers are the same either way: each batch is still ``load_images`` of the same files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .answers import Source

Decoded = tuple[np.ndarray, list[int], dict[int, str]]  # what Predictor.load_images returns


def decoded_batches(
    load_images: Callable[[Sequence[Source]], Decoded], sources: Sequence[Source], batch_size: int
) -> Iterator[tuple[Sequence[Source], np.ndarray, list[int], dict[int, str]]]:
    """(chunk, *``load_images(chunk)``) per ``batch_size`` chunk of ``sources``, the next
    chunk decoding in a thread while the caller uses this one."""
    chunks = [sources[s : s + batch_size] for s in range(0, len(sources), batch_size)]
    if not chunks:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="scenes-decode") as decoder:
        pending = decoder.submit(load_images, chunks[0])
        for n, chunk in enumerate(chunks):
            decoded = pending.result()
            if n + 1 < len(chunks):
                pending = decoder.submit(load_images, chunks[n + 1])
            yield (chunk, *decoded)
