"""One training step of a tiny model under torchrun (gloo, CPU); rank 0 saves loss and gradients.

Run by tests/test_distributed.py as: torchrun --nproc_per_node 2 tests/distributed_step.py OUT.pt [distill]
"""
import sys

import torch
from torch.nn.parallel import DistributedDataParallel

from asr.data import BucketBatchSampler, collate
from asr.distributed import init_distributed, shutdown
from asr.train import batch_loss

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from test_distributed import global_batch, tiny_recognizer, tiny_teacher


def main(out: str, distill: bool) -> None:
    rank, device = init_distributed(torch.device("cpu"))
    torch.manual_seed(0)
    recognizer = tiny_recognizer()
    items = global_batch()
    sampler = BucketBatchSampler([len(w) / 16000 for _, w, _ in items], max_seconds=100, max_batch=2,
                                 shuffle=False, rank=rank.rank, world=rank.world)
    (indices,) = sampler.batches()
    batch = collate([items[i] for i in indices])
    model = DistributedDataParallel(recognizer)
    teacher = tiny_teacher() if distill else None
    loss = batch_loss(model, batch, device, torch.autocast("cpu", enabled=False), teacher)
    (loss / len(batch.utterances)).backward()
    total = loss.detach().clone()
    torch.distributed.all_reduce(total)
    if rank.is_main:
        grads = {n: p.grad for n, p in recognizer.model.named_parameters()}
        torch.save({"loss": total, "grads": grads, "shares": sampler.world}, out)
    shutdown(rank)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] == ["distill"])
