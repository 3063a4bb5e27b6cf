"""`asr train` in each process under torchrun; each process then saves its own copy of the weights.

Run by tests/test_distributed.py as: torchrun --nproc_per_node 2 tests/distributed_train.py OUT OVERRIDES...
"""
import os
import sys

import torch

import asr.train
from asr.config import compose_config

replicas = []


class RecordedDDP(torch.nn.parallel.DistributedDataParallel):
    def __init__(self, module, *args, **kwargs):
        super().__init__(module, *args, **kwargs)
        replicas.append(module)


def main(out: str, overrides: list[str]) -> None:
    asr.train.DistributedDataParallel = RecordedDDP
    asr.train.check_replicas = lambda module, rank: None  # the test compares the copies itself
    asr.train.train(compose_config(overrides))
    (module,) = replicas
    # Parameters: batch norm's running statistics are each process's own until DDP broadcasts
    # process 0's at the next forward pass (checkpoints come from process 0).
    torch.save({k: v.detach().cpu() for k, v in module.model.named_parameters()}, f"{out}.{os.environ['RANK']}.pt")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
