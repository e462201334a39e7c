"""Where a run runs: accelerator, precision, devices, nodes and strategy, decided (and
refused, with the field and the fix, when it cannot work) before any data is decoded.

The process layout is Lightning's: ``devices`` processes on each of ``num_nodes`` machines,
started by Lightning itself (``scenes train --devices 4``), by ``torchrun`` or by SLURM.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..config_sections import TrainConfig
from ..errors import ConfigError

# Strategies that run one process per device and need more than one process in all.
DISTRIBUTED_PREFIXES = ("ddp", "fsdp", "deepspeed")


@dataclass(frozen=True)
class Hardware:
    accelerator: str  # what Lightning is given: "cpu", "cuda" or "mps"
    precision: str  # a Lightning precision value, never "auto"
    devices: int | list[int] | str  # what Lightning is given
    num_nodes: int
    strategy: str  # a Lightning strategy name; "ddp" when auto and several processes
    world_size: int  # processes in all: devices per node x nodes

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def describe(self) -> str:
        where = f"{self.accelerator}, precision {self.precision}"
        if self.distributed:
            where += (
                f", {self.world_size} processes ({self.devices_per_node} per node x "
                f"{self.num_nodes} node(s), strategy {self.strategy})"
            )
        return where

    @property
    def devices_per_node(self) -> int:
        return self.world_size // self.num_nodes


def resolve_accelerator(choice: str) -> str:
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if choice == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if choice in ("gpu", "cuda"):
        if cuda:
            return "cuda"
        if choice == "gpu" and mps:
            return "mps"
        raise ConfigError(
            f"train.accelerator={choice}: no GPU is available here; use --accelerator cpu (or auto)"
        )
    if choice == "mps" and not mps:
        raise ConfigError("train.accelerator=mps: MPS is not available here; use cpu or auto")
    return choice


def resolve_precision(choice: str, accelerator: str) -> str:
    """``auto``: bf16 autocast on CUDA GPUs that run bf16 natively (Ampere and newer), fp16
    autocast on older ones, fp32 elsewhere (bf16 autocast is slower than fp32 on CPUs without
    AMX: measured resnet18 23 -> 10 img/s on these cores)."""
    if choice == "auto":
        if accelerator != "cuda":
            return "32-true"
        native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        return "bf16-mixed" if native_bf16 else "16-mixed"
    if choice == "16-mixed" and accelerator == "cpu":
        # Lightning would run bf16 instead, while config.yaml said 16-mixed.
        raise ConfigError(
            "train.precision=16-mixed needs a CUDA GPU (on a CPU it would silently run as "
            "bf16-mixed); use --set train.precision=32-true or bf16-mixed"
        )
    return choice


def launcher_processes_per_node() -> int | None:
    """Processes per node started by torchrun or SLURM (None when Lightning starts them)."""
    for key in ("LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE"):
        value = os.environ.get(key, "")
        if value.isdigit():
            return int(value)
    return None


def devices_per_node(devices: int | list[int] | str, accelerator: str) -> int:
    """How many processes ``devices`` means on this machine, refusing what it does not have."""
    gpus = torch.cuda.device_count() if accelerator == "cuda" else 0
    if devices == "auto":
        launched = launcher_processes_per_node()
        if launched is not None:
            return launched
        return gpus if accelerator == "cuda" else 1
    if isinstance(devices, list):
        if accelerator == "cuda":
            missing = [i for i in devices if i >= gpus]
            if missing:
                raise ConfigError(
                    f"train.devices={devices}: this machine has {gpus} CUDA GPU(s) "
                    f"(ids 0..{gpus - 1}), so {missing} do not exist; list ids below {gpus}"
                )
        elif accelerator != "cuda":
            raise ConfigError(
                f"train.devices={devices}: a list of device ids needs CUDA GPUs; on "
                f"{accelerator} give a count (--devices {len(devices)})"
            )
        return len(devices)
    if accelerator == "cuda" and devices > gpus:
        raise ConfigError(
            f"train.devices={devices} asks for {devices} GPUs but this machine has {gpus}: "
            f"use --devices {gpus} (or fewer), or --accelerator cpu"
        )
    if accelerator == "mps" and devices > 1:
        raise ConfigError("train.devices: MPS has one device; use --devices 1")
    return devices


def resolve_strategy(choice: str, world_size: int) -> str:
    from lightning.pytorch.strategies import StrategyRegistry

    known = StrategyRegistry.available_strategies()
    if choice != "auto" and choice not in known:
        common = ", ".join(s for s in ("ddp", "ddp_spawn", "fsdp", "deepspeed") if s in known)
        raise ConfigError(
            f"train.strategy={choice!r} is not a Lightning strategy; use auto (DDP when there "
            f"is more than one process), or one of {common} (all: {len(known)} names, see "
            "Lightning's StrategyRegistry)"
        )
    if choice == "auto":
        return "ddp" if world_size > 1 else "auto"
    if choice.startswith(DISTRIBUTED_PREFIXES) and world_size == 1:
        raise ConfigError(
            f"train.strategy={choice} runs one process per device, but train.devices x "
            "train.num_nodes is 1: use --devices 2 or more (or --num-nodes), or --strategy auto"
        )
    if choice.startswith("single") and world_size > 1:
        raise ConfigError(
            f"train.strategy={choice} uses one device, but train.devices x train.num_nodes is "
            f"{world_size}: use --strategy ddp, or --devices 1"
        )
    return choice


def resolve_hardware(tc: TrainConfig) -> Hardware:
    accelerator = resolve_accelerator(tc.accelerator)
    per_node = devices_per_node(tc.devices, accelerator)
    launched = launcher_processes_per_node()
    if launched is not None and launched != per_node:
        raise ConfigError(
            f"train.devices: the launcher (torchrun or SLURM) started {launched} process(es) "
            f"on this node but train.devices means {per_node}: pass --devices {launched} "
            "(or --devices auto)"
        )
    world_size = per_node * tc.num_nodes
    return Hardware(
        accelerator=accelerator,
        precision=resolve_precision(tc.precision, accelerator),
        devices=tc.devices,
        num_nodes=tc.num_nodes,
        strategy=resolve_strategy(tc.strategy, world_size),
        world_size=world_size,
    )


def process_rank(devices_per_node: int) -> int:
    """This process's global rank, known from the environment before the process group
    exists: torchrun sets RANK, SLURM SLURM_PROCID, Lightning's own launcher NODE_RANK and
    LOCAL_RANK in the processes it starts. 0 in a plain single process."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if "SLURM_PROCID" in os.environ and "SLURM_NTASKS" in os.environ:
        return int(os.environ["SLURM_PROCID"])
    if "LOCAL_RANK" in os.environ:  # a process started by Lightning's launcher
        node = int(os.environ.get("NODE_RANK", 0))
        return node * devices_per_node + int(os.environ["LOCAL_RANK"])
    return 0
