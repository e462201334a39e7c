"""The config's ``model`` section: which network, and where its starting weights come from."""

from __future__ import annotations

from pydantic import Field

from .config_sections import Section


class ModelConfig(Section):
    name: str = Field(
        "mobilenet_v2",
        description="resnet50, torchvision:efficientnet_b0, timm:convnext_tiny, "
        "hf:google/vit-base-patch16-224, ... (`scenes models` lists them)",
    )
    pretrained: bool = Field(
        True, description="start from the backend's ImageNet weights (false: random initialisation)"
    )
    weights: str = Field(
        "DEFAULT",
        description="which pretrained weights: a torchvision name (IMAGENET1K_V1) or a timm tag; "
        "DEFAULT: the best ones already on this machine, else the backend's default, downloaded",
    )
    weights_file: str | None = Field(
        None,
        description="a local state-dict file (.pth, .safetensors) to start from; a classifier of "
        "another size in it is skipped",
    )
    weights_dir: str | None = Field(
        None,
        description="folder of pretrained weight files searched by their official names "
        "before downloading (then $SCENES_WEIGHTS_DIR, then the backends' own caches)",
    )
    channels_last: bool = Field(
        True, description="channels-last memory layout (faster convolutions on CPUs and GPUs)"
    )
    init: str | None = Field(
        None,
        description="a trained run (or its model/ bundle) to start from instead of pretrained "
        "weights (`scenes train --init RUN`): a new run on new data, of the same architecture; "
        "its classes keep their indices and new classes get new head rows that start below "
        "them; recorded resolved; null: off",
    )
    init_sha256: str | None = Field(
        None,
        description="the SHA-256 of model.init's model.safetensors, recorded by training; "
        "given, a run whose weights differ is refused",
    )
