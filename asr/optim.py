"""AdamW and the learning-rate schedule, without torch.optim.

Building any torch.optim optimizer imports torch._dynamo (its `add_param_group` and `step` are
wrapped to keep dynamo out of them, and the wrapper imports it on first use). On the H200 host of
the AN4 GPU recipe that import took 6.25 s, a tenth of the recipe's 60 s budget; on a 2-core CPU
0.8 s. This AdamW makes the same update as `torch.optim.AdamW` (bit for bit: tests/test_optim.py)
and reads and writes the same state-dict layout, so checkpoints move between the two. On CUDA it
calls the kernel behind `torch.optim.AdamW(fused=True)`, one launch a step; elsewhere it makes
torch.optim's default update with PyTorch's multi-tensor `_foreach` kernels.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import torch

log = logging.getLogger(__name__)

# The kernel of torch.optim.AdamW(fused=True): an ATen operator, present since PyTorch 2.1.
_FUSED_ADAMW = getattr(torch, "_fused_adamw_", None)


class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter) over one group of parameters.

    `param_groups` has torch.optim's shape (a list of dicts with "params" and "lr"), which is what
    `torch.amp.GradScaler` and learning-rate code read and write.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, fused: bool | None = None,
                 decay_vectors: bool = True):
        """`fused`: one kernel a step, as torch.optim.AdamW(fused=True); by default when every
        parameter is on CUDA. `decay_vectors=False`: no weight decay on tensors of fewer than two
        dimensions (biases, normalisation weights), as nanoGPT; the update is then torch.optim's
        with two groups, one of them at weight decay 0."""
        params = list(params)
        if not params:
            raise ValueError("AdamW got no parameters")
        if fused is None:
            fused = _FUSED_ADAMW is not None and all(p.is_cuda for p in params)
        self.fused = fused
        self.param_groups = [dict(params=params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                  decay_vectors=decay_vectors)]
        # By parameter: step (a count; fused: a float32 tensor beside the parameter, which the
        # kernel reads without a sync), exp_avg, exp_avg_sq.
        self.state: dict[torch.Tensor, dict] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def _state(self, p: torch.Tensor) -> dict:
        if p not in self.state:
            self.state[p] = dict(step=self._step_count(p, 0), exp_avg=torch.zeros_like(p),
                                 exp_avg_sq=torch.zeros_like(p))
        return self.state[p]

    def _step_count(self, p: torch.Tensor, n: int) -> int | torch.Tensor:
        return torch.tensor(float(n), dtype=torch.float32, device=p.device) if self.fused else n

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient (as torch.optim, the others keep
        their moments and step count)."""
        group = self.param_groups[0]
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        states = [self._state(p) for p in params]
        grads = [p.grad for p in params]
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]
        decays = [group["weight_decay"] if group.get("decay_vectors", True) or p.ndim >= 2 else 0.0 for p in params]
        for decay in sorted(set(decays), reverse=True):  # one update per weight decay, as torch.optim per group
            same = [i for i, d in enumerate(decays) if d == decay]
            pick = lambda items: [items[i] for i in same]  # noqa: E731
            args = (pick(params), pick(grads), pick(exp_avgs), pick(exp_avg_sqs), pick(states), lr, beta1, beta2,
                    eps, decay)
            if self.fused:
                try:
                    _fused_update(*args)
                    continue
                except (TypeError, RuntimeError) as error:  # the private kernel changed in this PyTorch
                    self._stop_fusing(error)
            _foreach_update(*args)

    def _stop_fusing(self, error: Exception) -> None:
        """From now on torch.optim.AdamW's own (unfused) update, which gives the same results."""
        log.warning("PyTorch %s's fused AdamW kernel failed (%s: %s); using torch.optim.AdamW's unfused update",
                    torch.__version__, error.__class__.__name__, error)
        self.fused = False
        for s in self.state.values():
            s["step"] = int(s["step"].item()) if torch.is_tensor(s["step"]) else s["step"]

    def state_dict(self) -> dict:
        """torch.optim's layout: parameters by their index; steps as float tensors."""
        group = self.param_groups[0]
        state = {}
        for i, p in enumerate(group["params"]):
            if p in self.state:
                s = self.state[p]
                step = s["step"].cpu() if self.fused else torch.tensor(float(s["step"]))
                state[i] = dict(step=step, exp_avg=s["exp_avg"], exp_avg_sq=s["exp_avg_sq"])
        hyper = {k: v for k, v in group.items() if k != "params"}
        return dict(state=state, param_groups=[dict(hyper, params=list(range(len(group["params"]))))])

    def load_state_dict(self, saved: dict) -> None:
        """Moments and step counts from `state_dict()` (ours or torch.optim.AdamW's); the learning
        rate is left to the schedule."""
        params = self.param_groups[0]["params"]
        saved_groups = saved["param_groups"]
        n_saved = sum(len(g["params"]) for g in saved_groups)
        if len(saved_groups) != 1 or n_saved != len(params):
            raise ValueError(f"optimizer state for {n_saved} parameters in {len(saved_groups)} group(s); "
                             f"this model has {len(params)} in 1")
        group = self.param_groups[0]
        group.update({k: saved_groups[0][k] for k in ("betas", "eps", "weight_decay", "decay_vectors")
                      if k in saved_groups[0]})
        group["betas"] = tuple(group["betas"])
        self.state = {}
        for index, p in zip(saved_groups[0]["params"], params):
            s = saved["state"].get(index)
            if s is None:
                continue
            if s["exp_avg"].shape != p.shape:
                raise ValueError(f"optimizer state of shape {tuple(s['exp_avg'].shape)} for a parameter "
                                 f"of shape {tuple(p.shape)}")
            step = s["step"]
            self.state[p] = dict(
                step=self._step_count(p, int(step.item() if torch.is_tensor(step) else step)),
                exp_avg=s["exp_avg"].to(p.device, p.dtype), exp_avg_sq=s["exp_avg_sq"].to(p.device, p.dtype),
            )


def _fused_update(params, grads, exp_avgs, exp_avg_sqs, states, lr, beta1, beta2, eps, weight_decay) -> None:
    steps = [s["step"] for s in states]
    torch._foreach_add_(steps, 1)
    try:
        if _FUSED_ADAMW is None:
            raise RuntimeError("no torch._fused_adamw_")
        for same in _by_device_and_dtype(params):  # the kernel takes one device and dtype a call
            _FUSED_ADAMW([params[i] for i in same], [grads[i] for i in same], [exp_avgs[i] for i in same],
                         [exp_avg_sqs[i] for i in same], [], [steps[i] for i in same], lr=lr, beta1=beta1,
                         beta2=beta2, weight_decay=weight_decay, eps=eps, amsgrad=False, maximize=False)
    except BaseException:
        torch._foreach_sub_(steps, 1)  # the caller falls back to the unfused update, which counts the step
        raise


def _foreach_update(params, grads, exp_avgs, exp_avg_sqs, states, lr, beta1, beta2, eps, weight_decay) -> None:
    """torch.optim.AdamW's single-tensor update, operation for operation."""
    for s in states:
        s["step"] += 1
    torch._foreach_mul_(params, 1 - lr * weight_decay)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, [(1 - beta2 ** s["step"]) ** 0.5 for s in states])
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denom, [-(lr / (1 - beta1 ** s["step"])) for s in states])


def _by_device_and_dtype(tensors: list[torch.Tensor]) -> list[list[int]]:
    """Indices of `tensors`, grouped by device and dtype."""
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault((t.device, t.dtype), []).append(i)
    return list(groups.values())


def lr_factor(step: int, total_steps: int, warmup_fraction: float, final_ratio: float) -> float:
    """Linear warm-up to the peak, then cosine decay to `final_ratio` of it."""
    warmup = max(1, int(warmup_fraction * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: AdamW, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
