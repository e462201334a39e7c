"""Backbone features (the classifier's input) of every image, cached on disk by image content.

A frozen backbone run once over a dataset turns every later experiment on top of it (a
linear head, cross-validated k times) into seconds of work. Features are stored per file
content (``files.content_digest``, which the decoded-image cache already computes) and per
backbone identity (a hash of its weights and preprocessing), so renaming, moving or
relabelling files, or adding a few, never recomputes the features of the others.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import replacing
from ..cache_folders import FEATURES
from ..choices import INFERENCE_BATCH, worker_count
from ..console import stage
from ..data.cache import decode_images, mark_used, warn_failed
from ..data.files import content_digest
from ..data.images import Preprocess
from ..data.transforms import normalize_batch
from ..errors import BundleError
from .devices import resolve_device

log = logging.getLogger(__name__)


@dataclass
class Backbone:
    """A network whose classifier is replaced by the identity, with its own preprocessing."""

    module: nn.Module
    description: str  # for people: "torchvision:mobilenet_v2, weights ...", "run runs/x"
    image_size: int
    mean: list[float]
    std: list[float]
    interpolation: str = "bilinear"
    channels_last: bool = True
    resize: str = "squash"

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess.for_mean(self.image_size, self.interpolation, self.resize, self.mean)

    def identity(self) -> str:
        """Hash of the weights and the preprocessing: equal identities give equal features."""
        digest = hashlib.sha256(f"{self.preprocess.key()}|{self.mean}|{self.std}".encode())
        for name, tensor in sorted(self.module.state_dict().items()):
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:24]


def without_head(module: nn.Module, head: str) -> nn.Module:
    """``module`` with its classifier layer ``head`` (a dotted name) replaced by the identity,
    so its output is the feature vector the classifier would have seen."""
    module.get_submodule(head)  # fails with the layer's name when it is not there
    parent_name, _, child = head.rpartition(".")
    parent = module.get_submodule(parent_name) if parent_name else module
    setattr(parent, child, nn.Identity())
    return module


def pretrained_backbone(
    name: str,
    weights: str = "DEFAULT",
    weights_file: str | Path | None = None,
    image_size: int = 150,
    class_names: list[str] | None = None,
    channels_last: bool = True,
    weights_dir: str | None = None,
    resize: str = "squash",
) -> Backbone:
    """An ImageNet-pretrained (or ``weights_file``) backbone, preprocessing of its weights."""
    from .registry import build_model

    names = list(class_names or ["class_0", "class_1"])
    built = build_model(
        name,
        len(names),
        pretrained=True,
        weights=weights,
        weights_file=weights_file,
        image_size=image_size,
        class_names=names,
        weights_dir=weights_dir,
    )
    return Backbone(
        module=without_head(built.module, built.head),
        description=f"{built.backend}:{built.architecture} ({built.weights or 'pretrained'})",
        image_size=image_size,
        mean=list(built.mean),
        std=list(built.std),
        interpolation=built.interpolation,
        channels_last=channels_last,
        resize=resize,
    )


def run_backbone(run: str | Path) -> Backbone:
    """The fine-tuned backbone of a run's model bundle, preprocessing from its model.json."""
    from .bundle import load_bundle, resolve_bundle_dir

    bundle = resolve_bundle_dir(run)
    module, meta = load_bundle(bundle)
    if not meta.head:
        raise BundleError(f"{bundle}/model.json does not name the classifier layer ('head')")
    return Backbone(
        module=without_head(module, meta.head),
        description=f"{meta.model_name} fine-tuned in {bundle}",
        image_size=meta.image_size,
        mean=list(meta.mean),
        std=list(meta.std),
        interpolation=meta.interpolation,
        channels_last=meta.channels_last,
        resize=meta.resize,
    )


@dataclass
class ImageFeatures:
    """Features of the readable images: row i belongs to ``paths[kept[i]]``."""

    features: np.ndarray  # (N, D) float32
    kept: np.ndarray
    failed: dict[str, str]
    digests: list[str]  # content_digest of each kept file (equal bytes, equal digest)
    computed: int  # how many distinct images went through the backbone in this call


def content_digests(paths: list[Path]) -> tuple[list[str | None], dict[str, str]]:
    """``content_digest`` of each file (the decoded-image cache's digest; None when unreadable)."""

    def digest(path: Path) -> str | None:
        try:
            return content_digest(Path(path).read_bytes())
        except OSError:
            return None

    with ThreadPoolExecutor(worker_count()) as pool:
        digests = list(pool.map(digest, paths))
    failed = {str(p): "OSError: cannot read the file" for p, d in zip(paths, digests) if d is None}
    return digests, failed


class FeatureStore:
    """Features of one backbone by image content digest, in one ``.npz`` file."""

    def __init__(self, path: Path | None):
        self.path = path

    def load(self) -> dict[str, np.ndarray]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            with np.load(self.path, allow_pickle=False) as data:
                known = dict(zip(data["digests"].tolist(), data["features"]))
            mark_used(self.path)
            return known
        except (OSError, ValueError, KeyError) as exc:  # a damaged cache is rebuilt, not fatal
            log.warning("ignoring unreadable feature cache %s (%s)", self.path, exc)
            return {}

    def save(self, rows: dict[str, np.ndarray]) -> None:
        if self.path is None or not rows:
            return
        with replacing(self.path, "wb") as fh:  # a reader never sees half a file
            np.savez(fh, digests=np.array(list(rows)), features=np.stack(list(rows.values())))


@torch.inference_mode()
def embed(
    backbone: Backbone,
    pixels: np.ndarray,
    rows: np.ndarray | None = None,
    batch_size: int = INFERENCE_BATCH,
    progress: bool = True,
    device: str = "auto",
) -> np.ndarray:
    """Features (len(rows), D) float32 of ``pixels[rows]`` ((N, H, W, 3) uint8; all rows when
    None), read batch by batch so a memory-mapped array is never loaded whole."""
    rows = np.arange(len(pixels)) if rows is None else np.asarray(rows)
    where = resolve_device(device)
    module = backbone.module.to(where).eval()
    if backbone.channels_last:
        module = module.to(memory_format=torch.channels_last)
    chunks = []
    with stage("backbone features", len(rows), show=progress) as bar:
        for start in range(0, len(rows), batch_size):
            batch = pixels[rows[start : start + batch_size]]
            batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
            x = normalize_batch(
                torch.from_numpy(batch).to(where),
                backbone.mean,
                backbone.std,
                backbone.channels_last,
            )
            chunks.append(module(x).float().flatten(1).cpu())
            bar.update(len(batch))
    if not chunks:
        return np.empty((0, 0), dtype=np.float32)
    return torch.cat(chunks).numpy()


# Another way to compute features: paths in; features by content digest, and the files that
# could not be decoded, out (``serve.ray_logits_features.features_with_ray``).
FeatureCompute = Callable[[list[Path]], tuple[dict[str, np.ndarray], dict[str, str]]]


def image_features(
    paths: list[Path],
    backbone: Backbone,
    cache_dir: Path | None,
    batch_size: int = INFERENCE_BATCH,
    progress: bool = True,
    device: str = "auto",
    compute: FeatureCompute | None = None,
) -> ImageFeatures:
    """Features of ``paths`` (unreadable files skipped, with one warning naming them).

    Files are hashed first; only contents whose features this backbone has not cached yet are
    decoded and go through the network. The first call on a folder decodes all of it through
    the decoded-image cache (the one training at the same size reads); later calls decode only
    new contents, without writing another pixel cache for every variant of a file list.
    With ``compute`` the missing contents go to it instead (one file per content), and no pixel
    cache is written.
    """
    digests, failed = content_digests(paths)
    warn_failed(failed)
    store = FeatureStore(
        Path(cache_dir) / FEATURES / f"{backbone.identity()}.npz" if cache_dir else None
    )
    known = store.load()
    missing = {d for d in digests if d is not None and d not in known}
    fresh: dict[str, np.ndarray] = {}
    if missing and compute is not None:
        firsts = {d: p for p, d in zip(paths, digests) if d in missing}
        fresh_by_digest, undecoded = compute(list(firsts.values()))
        failed.update(undecoded)
        fresh = {d: f for d, f in fresh_by_digest.items() if d not in known}
    elif missing:
        first = not any(d in known for d in digests if d is not None)
        to_decode = list(paths) if first else [p for p, d in zip(paths, digests) if d in missing]
        pixel_cache = cache_dir if first else None
        decoded = decode_images(to_decode, backbone.preprocess, pixel_cache, progress=progress)
        failed.update(decoded.failed)
        fresh = embed_new(decoded, known, backbone, batch_size, progress, device)
    if missing:
        known.update(fresh)
        store.save(known)
        log.info("computed features of %d images (%s)", len(fresh), backbone.description)
    return gathered(digests, known, failed, len(fresh))


def embed_new(decoded, known, backbone, batch_size, progress, device) -> dict[str, np.ndarray]:
    """Features of each decoded content not ``known`` yet, embedded once (its first row)."""
    rows: dict[str, int] = {}  # digest -> first decoded row with that content
    for row, digest in enumerate(decoded.digests):
        if digest not in known:
            rows.setdefault(digest, row)
    picked = np.fromiter(rows.values(), np.int64)
    return dict(zip(rows, embed(backbone, decoded.pixels, picked, batch_size, progress, device)))


def gathered(digests, known, failed, computed: int) -> ImageFeatures:
    """The features of every file whose content is ``known``, in the order of ``digests``."""
    kept = [i for i, d in enumerate(digests) if d in known]
    dim = next(iter(known.values())).shape[0] if known else 0
    features = np.stack([known[digests[i]] for i in kept]) if kept else np.empty((0, dim))
    return ImageFeatures(
        features=features.astype(np.float32, copy=False),
        kept=np.asarray(kept, dtype=np.int64),
        failed=failed,
        digests=[digests[i] for i in kept],
        computed=computed,
    )
