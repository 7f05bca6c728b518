"""torch.distributed for sampling and training alike: processes come from torchrun, never from us.

    torchrun --nproc_per_node 8 -m sgbench.cli sample ...      # WORLD_SIZE, RANK, LOCAL_RANK set by torchrun

`init(device)` joins the process group torchrun describes (nccl on CUDA, gloo on the CPU) and pins
each process to its local GPU; a plain `python -m sgbench.cli ...` is one process of a world of one.
"""

from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist

from sgbench.utils.errors import SgbenchError


def init(device: torch.device) -> tuple[int, int]:
    """Join torchrun's process group if there is one; returns (rank, world size)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(_leave)
    return rank_and_world()


def _leave() -> None:
    """Leave the process group before the interpreter tears down: a group destroyed only by the interpreter's
    shutdown can end the process in std::terminate (SIGABRT, "terminate called without an active exception",
    seen in 2-process CPU runs) after all its work was written."""
    if dist.is_initialized():
        dist.destroy_process_group()


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_device(device: torch.device) -> torch.device:
    """`cuda` under torchrun means this process's GPU (LOCAL_RANK)."""
    if device.type == "cuda" and device.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def sum_over_processes(value: float) -> float:
    if dist.is_available() and dist.is_initialized():
        t = torch.tensor([value], dtype=torch.float64, device=_reduce_device())
        dist.all_reduce(t)
        return float(t.item())
    return value


def mean_over_processes(x: torch.Tensor) -> float:
    if dist.is_available() and dist.is_initialized():
        x = x.detach().clone().float().to(_reduce_device())
        dist.all_reduce(x)
        x /= dist.get_world_size()
    return float(x)


def _reduce_device() -> torch.device:
    """nccl reduces tensors on the GPU, gloo on the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def parse_device(name: str) -> torch.device:
    """'cpu', 'cuda', 'cuda:1', 'mps' -> a device that exists here, or one line saying why not."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise SgbenchError(f"Expected --device cpu, cuda, cuda:N or mps but got '{name}'") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SgbenchError(f"Expected a CUDA GPU for --device {name} but torch sees none here "
                               f"(torch {torch.__version__}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SgbenchError(f"Expected --device {name} but this machine has {torch.cuda.device_count()} GPU(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise SgbenchError("Expected an Apple GPU for --device mps but torch sees none here; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise SgbenchError(f"Expected --device cpu, cuda, cuda:N or mps but got '{name}'")
    return device
