"""Data: discover folders, decode and cache images, split, augment, load."""

from .cache import decode_images
from .discover import DataError, find_layout, list_labelled_files
from .images import load_image
from .split import split_train_val

__all__ = [
    "DataError",
    "decode_images",
    "find_layout",
    "list_labelled_files",
    "load_image",
    "split_train_val",
]
