"""The sections of the config (``config.py``): data, augment, train (model is in
``config_model``, serve in ``config_serve``). Each field says its type, default, allowed range
and meaning; the documentation's config reference and ``configs/default.yaml`` are generated
from them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Square input sizes a run may train at (and so a model bundle may declare).
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 1024


class Section(BaseModel):
    # extra="forbid": a typo in a key must fail, not be silently ignored.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    dir: str | None = Field(
        None, description="dataset folder; null means $SCENES_DATA, else data/intel"
    )
    image_size: int = Field(
        150,
        ge=MIN_IMAGE_SIZE,
        le=MAX_IMAGE_SIZE,
        description="square input size in pixels (Intel's native 150 is fastest; 224 is about 2-2.5x slower on a CPU)",
    )
    resize: Literal["squash", "crop", "pad"] = Field(
        "squash",
        description="how a photo that is not square becomes the square input: squash (the "
        "whole photo, stretched), crop (the centre square, aspect kept) or pad (the whole "
        "photo, aspect kept, letterboxed in the colour that normalises to zero); the bundle "
        "records it, so every serving path does the same",
    )
    val_fraction: float = Field(
        0.1,
        gt=0.0,
        lt=1.0,
        description="share of the training images held out for validation, stratified by class",
    )
    split_seed: int = Field(
        42,
        description="seeds the train/validation split only, so runs with another `seed` are "
        "measured on the same validation images",
    )
    batch_size: Annotated[int, Field(ge=1, le=4096)] | Literal["auto"] = Field(
        32,
        description="training images per step and device; auto (CUDA only): the largest that "
        "fits in GPU memory, found by Lightning's batch-size finder before training",
    )
    sampler: Literal["shuffle", "balanced"] = Field(
        "shuffle",
        description="the order of training images each epoch: shuffle (each image once), or "
        "balanced (each class drawn equally often: small classes repeat, large ones are "
        "partly seen); both seeded, sharded across processes and exactly resumable",
    )
    num_workers: int | Literal["auto"] = Field(
        "auto",
        description="DataLoader workers; auto: 0 on a CPU (the decoded cache makes loading cheap), "
        "min(8, cores) with CUDA; unused with on_device",
    )
    cache_dir: str | None = Field(
        None, description="decoded-image cache; null means $SCENES_CACHE, else ~/.cache/scenes"
    )
    labels: str | None = Field(
        None,
        description="several labels per image: a CSV with the columns path (relative to the "
        "CSV's folder) and labels (class names separated by spaces; empty: none of them) "
        "instead of class folders; the task is then multilabel",
    )
    classes: list[str] | None = Field(
        None,
        description="with labels: the class list, in this order (null: the names in the CSV, "
        "sorted)",
    )
    exclude: str | None = Field(
        None,
        description="file listing training images to leave out of train and validation: a CSV "
        "with a path column (label_issues.csv of `scenes data issues`) or one path per line; "
        "applied after the split, recorded in split.csv",
    )
    relabel: str | None = Field(
        None,
        description="decisions CSV to train with (RUN/review/decisions.csv of `scenes review`): "
        "columns path and decision (a class, several separated by ; when multi-label, keep or "
        "exclude), optional sha256; applied after the split; split.csv records both labels",
    )
    on_device: bool | Literal["auto"] = Field(
        "auto",
        description="keep the decoded uint8 images on the training device (14k images at 150 px "
        "are 0.95 GB) and draw each batch there by index, in the sampler's order; auto: on "
        "when training on CUDA",
    )

    @model_validator(mode="after")
    def _workers_not_negative(self) -> DataConfig:
        # A plain message: pydantic's for a union names each branch's failure separately.
        if isinstance(self.num_workers, int) and self.num_workers < 0:
            raise ValueError("num_workers must be 'auto' or an integer >= 0")
        return self


class AugmentConfig(Section):
    preset: Literal["none", "classic", "trivialaugment"] = Field(
        "classic",
        description="augmentation of training batches, on the training device (kornia), drawn "
        "per image: none; classic: flip, shift-scale-rotate, gamma, rotate, pixel dropout, each "
        "with probability p; trivialaugment: flip, then one of TrivialAugmentWide's 14 "
        "operations at a random magnitude",
    )
    p: float = Field(0.25, ge=0.0, le=1.0, description="probability of each classic augmentation")
    mixup_alpha: float = Field(
        0.0, ge=0.0, description="MixUp of training batches (Beta(alpha, alpha)); 0: off"
    )
    cutmix_alpha: float = Field(
        0.0, ge=0.0, description="CutMix of training batches; 0: off; both > 0: one per batch"
    )


class TrainConfig(Section):
    epochs: int = Field(
        4, ge=1, le=10_000, description="maximum epochs (early stopping may end sooner)"
    )
    lr: float = Field(
        3e-3,
        gt=0.0,
        le=10.0,
        description="the learning rate of the head (of everything in full mode); the full phase of "
        "fine_tune uses lr x unfreeze_lr_factor",
    )
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0, description="weight decay of the weights")
    norm_weight_decay: float | None = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="weight decay of normalisation weights and biases; null: weight_decay",
    )
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="adamw, or sgd (Nesterov)")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD only")
    class_weights: Literal["none", "balanced", "effective"] = Field(
        "none",
        description="weights of the classes in the training loss: none; balanced (inverse "
        "frequency, N / (classes x n_c)); effective (the effective number of samples of Cui et "
        "al. 2019, (1 - beta) / (1 - beta^n_c), beta = effective_beta); normalised to mean 1",
    )
    effective_beta: float = Field(
        0.999, gt=0.0, lt=1.0, description="beta of class_weights: effective"
    )
    label_smoothing: float = Field(
        0.1, ge=0.0, lt=1.0, description="label smoothing of the training loss"
    )
    ema_decay: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="exponential moving average of the weights (e.g. 0.998), from the full "
        "phase on; validation, checkpoints and the bundle use the average; null: off",
    )
    teacher: list[str] = Field(
        default_factory=list,
        description="distillation: trained runs (or model/ bundles, ensembles too) whose "
        "averaged probabilities on the training images the model learns from besides the "
        "labels (train.teacher_outputs says when they answer); []: off",
    )
    distill_alpha: float = Field(
        0.5, ge=0.0, le=1.0, description="distillation: the teacher's share of the loss"
    )
    distill_temperature: float = Field(
        4.0, gt=0.0, le=100.0, description="distillation: temperature T softening teacher and model"
    )
    teacher_outputs: Literal["live", "cached"] = Field(
        "live",
        description="distillation: live: the teachers answer every augmented training batch; "
        "cached: each training image once, un-augmented, kept in the cache folder for later "
        "runs (no MixUp/CutMix)",
    )
    scheduler: Literal["cosine", "step", "plateau", "none"] = Field(
        "cosine",
        description="learning-rate schedule: cosine (linear warmup, then cosine decay, per step), "
        "step (step_size, gamma), plateau (on train.monitor: gamma, plateau_patience), none",
    )
    warmup_epochs: float = Field(0.25, ge=0.0, description="linear warmup (cosine only)")
    step_size: int = Field(3, ge=1, description="epochs between LR drops (step only)")
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="LR factor per drop (step, plateau)")
    plateau_patience: int = Field(
        1, ge=0, description="epochs without improvement before a drop (plateau only)"
    )
    mode: Literal["full", "head", "fine_tune"] = Field(
        "fine_tune",
        description="full: train everything; head: backbone frozen; "
        "fine_tune: head for head_epochs, then everything at lr * unfreeze_lr_factor",
    )
    head_epochs: int = Field(1, ge=0, description="fine_tune only")
    rehearsal: int = Field(
        0,
        ge=0,
        description="with model.init: N training images (split.csv) of the run per old class "
        "that the new data lacks, added to the new data and listed in rehearsal.csv, so the "
        "old classes are not forgotten; 0: none",
    )
    unfreeze_lr_factor: float = Field(0.1, gt=0.0, le=1.0, description="fine_tune only")
    monitor: Literal["val_loss", "val_acc", "val_f1", "val_map"] = Field(
        "val_loss",
        description="metric for early stopping and the best checkpoint: val_loss, val_f1 "
        "(macro), val_acc (top-1; single-label only), val_map (mean average precision; "
        "multi-label only)",
    )
    patience: int = Field(3, ge=1, description="early-stopping patience in epochs")
    precision: Literal["auto", "32-true", "16-mixed", "bf16-mixed", "bf16-true"] = Field(
        "auto",
        description="auto: bf16-mixed on CUDA GPUs with native bf16 (Ampere and newer), else "
        "16-mixed; 32-true on a CPU (bf16 autocast is slower on CPUs without AMX); 16-mixed "
        "needs CUDA (on a CPU Lightning would silently run bf16, so it is refused)",
    )
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = Field(
        "auto", description="where to train: auto (a GPU when there is one), cpu, gpu, cuda, mps"
    )
    devices: int | list[int] | Literal["auto"] = Field(
        1,
        description="devices (processes) per node: a count, a list of GPU ids, or auto (all "
        "GPUs, or what torchrun/SLURM started)",
    )
    num_nodes: int = Field(1, ge=1, le=4096, description="machines taking part in the run")
    strategy: str = Field(
        "auto",
        description="auto (DDP when there is more than one process) or a Lightning strategy "
        "name, e.g. ddp, ddp_spawn, fsdp",
    )
    accumulate_grad_batches: int = Field(
        1, ge=1, le=4096, description="batches per optimizer step (a larger effective batch)"
    )
    deterministic: bool = Field(
        False, description="deterministic GPU kernels (slower; CPU runs are reproducible anyway)"
    )
    grad_clip: float | None = Field(
        None, gt=0.0, description="clip the gradient norm to this; null: no clipping"
    )
    progress_bar: bool = Field(
        True, description="a progress bar per epoch (shown only on a terminal)"
    )
    compile: bool | Literal["auto"] = Field(
        "auto",
        description="torch.compile the network for training: auto compiles on CUDA only (on "
        "2 CPU cores a MobileNetV2 training step was only 6% faster once compiled, after "
        "105 s of compiling: under the 10% that pays), true compiles anywhere, false never",
    )
    loggers: list[Literal["csv", "tensorboard", "mlflow", "wandb"]] = Field(
        default_factory=lambda: ["csv", "tensorboard"],
        description="where the per-epoch numbers also go (the same numbers as metrics.csv): "
        "csv (metrics.csv, always on), tensorboard, mlflow ($MLFLOW_TRACKING_URI, else "
        "sqlite:///mlflow.db in the working directory, artifacts in ./mlruns; pip install "
        "scenes[mlflow]), wandb ($WANDB_PROJECT, WANDB_MODE=offline "
        "without a network; pip install scenes[wandb])",
    )

    @field_validator("teacher", mode="before")
    @classmethod
    def _one_teacher_is_a_list(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("loggers")
    @classmethod
    def _csv_stays(cls, value: list[str]) -> list[str]:
        if "csv" not in value:
            raise ValueError(
                "metrics.csv is the run's own record (report, compare, resume read it): keep "
                "csv in the list, e.g. [csv, mlflow]"
            )
        if len(set(value)) != len(value):
            raise ValueError(f"each logger once, got {value}")
        return value

    @model_validator(mode="after")
    def _devices_valid(self) -> TrainConfig:
        devices = self.devices
        if isinstance(devices, int) and devices < 1:
            raise ValueError("devices must be at least 1, a list of GPU ids, or auto")
        if isinstance(devices, list) and (
            not devices or len(set(devices)) != len(devices) or min(devices) < 0
        ):
            raise ValueError("devices must list distinct GPU ids >= 0, e.g. [0, 1]")
        return self
