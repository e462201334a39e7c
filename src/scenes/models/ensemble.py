"""Ensembles that serve as one model: the members' probabilities averaged inside one network.

An ensemble bundle is an ordinary bundle (``model.json`` + ``model.safetensors``) whose
``backend`` is ``ensemble``: ``members`` holds each member's own description and the weights
are theirs under ``members.<i>.``. Being one ``nn.Module``, it goes wherever a single model
goes: the PyTorch runner, one ONNX graph (and every format made from it), heatmaps.

Inside, each member sees the batch as its own weights expect: the ensemble's input is
normalised as its first member's; a member with another mean/std is renormalised in the graph,
and a member trained at a smaller size gets the batch resized (bilinear, antialiased) from the
ensemble's size, the largest of its members'. Each member's logits are divided by its own
fitted temperature before its softmax; the output is the log of the mean probability, so the
softmax every backend applies gives back exactly that mean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .meta import BUNDLE_FORMAT, BundleMeta

if TYPE_CHECKING:
    from torch import nn

JOINED = "joined"  # the ensemble's "head": its input is every member's features, side by side


def ensemble_meta(members: list[BundleMeta]) -> BundleMeta:
    """The description of an ensemble of ``members`` (validated: same classes, multiclass)."""
    first = members[0]
    largest = max(members, key=lambda m: m.image_size)
    names = " + ".join(m.model_name for m in members)
    return BundleMeta(
        backend="ensemble",
        architecture=f"{len(members)} members: {names}"[:500],
        class_names=list(first.class_names),
        image_size=largest.image_size,
        mean=list(first.mean),
        std=list(first.std),
        interpolation=largest.interpolation,
        resize=first.resize,
        head=JOINED,
        channels_last=first.channels_last,
        format=BUNDLE_FORMAT,
        members=[m.model_copy(update={"acceptance": None}) for m in members],
    )


def build_network(meta: BundleMeta) -> nn.Module:
    """The untrained network a bundle's weights load into: the architecture ``meta`` names,
    or for an ensemble its members' networks inside the averaging one."""
    if meta.members is not None:
        modules = [build_network(m) for m in meta.members]
        return averaging(modules, meta.members, meta.mean, meta.std, meta.image_size)
    from .registry import build_model

    return build_model(
        meta.model_name,
        meta.num_classes,
        pretrained=False,
        image_size=meta.image_size,
        class_names=meta.class_names,
        backend_config=meta.backend_config,
    ).module


def averaging(
    modules: list[nn.Module],
    members: list[BundleMeta],
    mean: list[float],
    std: list[float],
    image_size: int,
) -> nn.Module:
    """The network that averages ``modules`` (described by ``members``) over a batch at
    ``image_size`` px normalised with ``mean``/``std``: an ensemble's, or a distillation
    teacher's over the student's batch."""
    return _ensemble_class()(modules, members, mean, std, image_size)


def _ensemble_class():
    """Defined on first use, so reading an ensemble's ``model.json`` imports no torch."""
    global _Ensemble
    if _Ensemble is not None:
        return _Ensemble
    import torch
    from torch import nn

    class Ensemble(nn.Module):
        def __init__(self, modules, members, mean, std, image_size: int):
            super().__init__()
            self.members = nn.ModuleList(modules)
            self.joined = nn.Identity()
            self.heads = [m.head for m in members]
            self.sizes = [m.image_size for m in members]
            self.temperatures = [m.temperature for m in members]
            self.renormalised = [(m.mean, m.std) != (list(mean), list(std)) for m in members]
            for i, m in enumerate(members):
                if self.renormalised[i]:  # x * std0 + mean0 is the pixel; then its own (p - m) / s
                    scale = [s0 / s for s0, s in zip(std, m.std)]
                    shift = [(m0 - mi) / s for m0, mi, s in zip(mean, m.mean, m.std)]
                    for name, values in (("scale", scale), ("shift", shift)):
                        tensor = torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)
                        self.register_buffer(f"{name}_{i}", tensor, persistent=False)
                if m.image_size != image_size:
                    matrix = resize_matrix(image_size, m.image_size, m.interpolation)
                    self.register_buffer(f"resize_{i}", matrix, persistent=False)

        def _input_of(self, i: int, x):
            resize = getattr(self, f"resize_{i}", None)
            if resize is not None:  # (size, S) @ x @ (S, size): a fixed linear map, so it
                x = torch.matmul(torch.matmul(resize, x), resize.T)  # exports as MatMul
            if self.renormalised[i]:
                x = x * getattr(self, f"scale_{i}") + getattr(self, f"shift_{i}")
            return x

        def forward(self, x):
            probs, features, captured = [], [], []
            for i, member in enumerate(self.members):
                head = member.get_submodule(self.heads[i])
                hook = head.register_forward_hook(lambda _m, inp, _o: captured.append(inp[0]))
                try:
                    logits = member(self._input_of(i, x))
                finally:
                    hook.remove()
                probs.append(torch.softmax(logits.float() / self.temperatures[i], dim=1))
                features.append(captured[-1].flatten(1))
            self.joined(torch.cat(features, dim=1))  # what WithFeatures reads as the features
            mean = torch.stack(probs).mean(dim=0)
            # log(mean) through the softmax every backend applies is the mean again; the floor
            # keeps a class no member gives any probability finite in every runtime.
            return torch.log(mean.clamp_min(1e-30))

    _Ensemble = Ensemble
    return Ensemble


def resize_matrix(size_in: int, size_out: int, interpolation: str = "bilinear"):
    """The (size_out, size_in) matrix of an antialiased 1-D resize (torch's, which follows
    PIL's filters): resizing a square image is this matrix on its rows and on its columns.
    As a matrix product it exports to every format, where an antialiased resize operator
    does not (ONNX opset 17 has none)."""
    import torch
    import torch.nn.functional as F

    mode = "bicubic" if interpolation == "bicubic" else "bilinear"
    basis = torch.eye(size_in, dtype=torch.float64).view(size_in, 1, 1, size_in)
    rows = F.interpolate(basis, size=(1, size_out), mode=mode, antialias=True)
    return rows.view(size_in, size_out).T.contiguous().float()


_Ensemble = None
