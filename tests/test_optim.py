import subprocess
import sys

import pytest
import torch

from asr.optim import AdamW, lr_factor, set_lr


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=g)) for shape in [(7, 5), (5,), (3, 4, 2)]]


def _grads(params, step: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    return [torch.randn(p.shape, generator=g) for p in params]


def _run(optimizer, params, steps: range, skip: dict[int, int] | None = None) -> None:
    """Set made-up gradients and step, with a schedule that changes the learning rate; `skip`
    leaves one parameter without a gradient at a given step."""
    for step in steps:
        optimizer.zero_grad(set_to_none=True)
        for i, (p, g) in enumerate(zip(params, _grads(params, step))):
            if (skip or {}).get(step) != i:
                p.grad = g
        set_lr(optimizer, 3e-3 * lr_factor(step, 10, 0.2, 0.01))
        optimizer.step()


@pytest.mark.parametrize("fused", [False, True])
def test_adamw_makes_torch_optims_update_bit_for_bit(fused):
    ours, theirs = _params(), _params()
    kwargs = dict(lr=3e-3, betas=(0.9, 0.98), weight_decay=1e-2, fused=fused)
    _run(AdamW(ours, **kwargs), ours, range(6), skip={2: 1})
    _run(torch.optim.AdamW(theirs, **kwargs), theirs, range(6), skip={2: 1})
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    assert not torch.equal(ours[0], _params()[0])  # it did move


@pytest.mark.parametrize("fused", [False, True])
def test_adamw_resumes_from_its_own_state_and_from_torch_optims(fused):
    kwargs = dict(lr=3e-3, betas=(0.9, 0.98), weight_decay=1e-2, fused=fused)
    straight = _params()
    _run(AdamW(straight, **kwargs), straight, range(6))
    for first_half in (AdamW, torch.optim.AdamW):
        params = _params()
        before = first_half(params, **kwargs)
        _run(before, params, range(3))
        saved = before.state_dict()
        resumed = [torch.nn.Parameter(p.detach().clone()) for p in params]
        # The hyperparameters come from the state.
        after = AdamW(resumed, lr=1.0, betas=(0.5, 0.5), weight_decay=0.0, fused=fused)
        after.load_state_dict(saved)
        _run(after, resumed, range(3, 6))
        for a, b in zip(resumed, straight):
            assert torch.equal(a, b), first_half


def test_adamw_fuses_by_default_on_cuda_only():
    assert not AdamW(_params(), lr=1e-3).fused  # CPU: torch.optim's default (single-tensor) update
    if torch.cuda.is_available():
        assert AdamW([torch.nn.Parameter(torch.ones(2, device="cuda"))], lr=1e-3).fused


def test_adamw_refuses_state_of_another_model():
    params = _params()
    optimizer = AdamW(params, lr=1e-3)
    _run(optimizer, params, range(1))
    with pytest.raises(ValueError, match="2 in 1|3 parameters"):
        AdamW(params[:2], lr=1e-3).load_state_dict(optimizer.state_dict())
    swapped = [torch.nn.Parameter(torch.zeros(5)), torch.nn.Parameter(torch.zeros(7, 5)), params[2]]
    with pytest.raises(ValueError, match="shape"):
        AdamW(swapped, lr=1e-3).load_state_dict(optimizer.state_dict())


def test_adamw_does_not_import_torch_dynamo():
    """The reason it exists: torch.optim imports torch._dynamo, seconds on a cold GPU host."""
    code = (
        "import sys, torch\n"
        "from asr.optim import AdamW\n"
        "p = torch.nn.Parameter(torch.ones(3)); p.grad = torch.ones(3)\n"
        "AdamW([p], lr=0.1).step()\n"
        "assert p[0].item() < 1.0\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_lr_factor_warms_up_then_decays_to_the_final_ratio():
    factors = [lr_factor(step, 100, 0.1, 0.01) for step in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))
    assert factors[100] == pytest.approx(0.01)


def test_adamw_works_under_grad_scaler_as_fp16_training_uses_it():
    """`train.precision=fp16` steps through torch.amp.GradScaler: it unscales our gradients, steps,
    and skips the step when a gradient overflowed."""
    plain, scaled = _params(), _params()
    opt_plain, opt_scaled = AdamW(plain, lr=1e-2), AdamW(scaled, lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    for params, optimizer, scale in ((plain, opt_plain, None), (scaled, opt_scaled, scaler)):
        loss = sum((p ** 2).sum() for p in params)
        (scale.scale(loss) if scale else loss).backward()
        if scale:
            scale.unscale_(optimizer)
            scale.step(optimizer)
            scale.update()
        else:
            optimizer.step()
    for a, b in zip(plain, scaled):
        assert torch.equal(a, b)
    before = [p.detach().clone() for p in scaled]
    opt_scaled.zero_grad()
    scaler.scale(sum((p * float("inf")).sum() for p in scaled)).backward()
    scaler.step(opt_scaled)
    scaler.update()
    assert all(torch.equal(a, b) for a, b in zip(before, scaled))  # skipped
    assert scaler.get_scale() == 512.0


@pytest.mark.parametrize("fused", [False, True])
def test_no_weight_decay_on_vectors_is_torch_optims_two_groups(fused):
    ours, theirs = _params(), _params()
    matrices, vectors = [p for p in theirs if p.ndim >= 2], [p for p in theirs if p.ndim < 2]
    _run(AdamW(ours, lr=3e-3, betas=(0.9, 0.98), weight_decay=0.1, fused=fused, decay_vectors=False), ours, range(6))
    reference = torch.optim.AdamW([dict(params=matrices, weight_decay=0.1), dict(params=vectors, weight_decay=0.0)],
                                  lr=3e-3, betas=(0.9, 0.98), fused=fused)
    _run(reference, theirs, range(6))
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kernel", ["missing", "changed"])
def test_without_a_working_fused_kernel_the_update_falls_back_to_torch_optims(monkeypatch, caplog, kernel):
    """A future PyTorch may drop or change the private kernel: the run goes on with torch.optim.AdamW's
    unfused update (same results), and says so."""
    import asr.optim

    def changed(*args, **kwargs):
        raise TypeError("_fused_adamw_() got an unexpected keyword argument 'beta1'")

    monkeypatch.setattr(asr.optim, "_FUSED_ADAMW", None if kernel == "missing" else changed)
    ours, theirs = _params(), _params()
    optimizer = AdamW(ours, lr=3e-3, weight_decay=1e-2, fused=True)
    _run(optimizer, ours, range(6), skip={2: 1})
    _run(torch.optim.AdamW(theirs, lr=3e-3, weight_decay=1e-2), theirs, range(6), skip={2: 1})
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    assert not optimizer.fused and "fused AdamW kernel failed" in caplog.text
    assert optimizer.state_dict()["state"][0]["step"].item() == 6
