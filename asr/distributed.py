"""Multi-process training with PyTorch's own engine: `torchrun --nproc_per_node N -m asr train ...`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; we join its process group (NCCL on GPU, gloo on
CPU), give each rank its own GPU, and let rank 0 alone write logs and checkpoints.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def init_distributed(device: torch.device) -> tuple[Rank, torch.device]:
    """Join torchrun's process group when WORLD_SIZE > 1; returns this process's rank and device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Rank(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Rank(rank, world, local_rank), device


def barrier(rank: Rank) -> None:
    if rank.distributed:
        dist.barrier()


def shutdown(rank: Rank) -> None:
    """Leave the group together: a rank that tears down while another still talks makes gloo abort."""
    if rank.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def check_replicas(module: torch.nn.Module, rank: Rank) -> None:
    """Raise if the processes' copies of `module` have drifted apart (they must take the same steps)."""
    with torch.no_grad():
        flat = torch.cat([p.detach().double().flatten() for p in module.parameters()])  # on NCCL's device
        weights = torch.arange(flat.numel(), dtype=torch.float64, device=flat.device).remainder_(9973).add_(1)
        mine = torch.stack([flat.sum(), flat.abs().sum(), (flat * weights).sum()])
    every = [torch.zeros_like(mine) for _ in range(rank.world)]
    dist.all_gather(every, mine)
    for other, theirs in enumerate(every):
        if not torch.equal(theirs, every[0]):
            raise RuntimeError(f"the weights of process {other} differ from process 0's "
                               f"(checksums {theirs.tolist()} vs {every[0].tolist()}): the replicas drifted apart")
