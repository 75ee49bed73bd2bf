"""One lazy-Adam step over a padded row buffer (mmkgc_pyg.kernels.lazy_adam): the Triton
kernel on ``--kernel-device`` and the PyTorch reference against the eager lazy Adam (Python
step count and scalars) and :class:`torch.optim.Adam`; padding rows never change."""
import pytest
import torch

from mmkgc_pyg.errors import InvalidArgumentError
from mmkgc_pyg.kernels.lazy_adam import lazy_adam_step_, lazy_adam_step_reference_

LR, BETA1, BETA2, EPS = 1e-2, 0.9, 0.999, 1e-8
N = 12
# (valid rows, padding rows) per step; the buffer holds S = 6. Row 2: steps 1 and 3, not 2;
# step 2 fills the buffer (count = S); step 4 touches nothing (count = 0).
STEPS = [([2, 5, 9], [5, 2, 9]), ([7, 0, 11, 3, 5, 1], []), ([2, 4], [4, 4, 2, 2]),
         ([], [2, 2, 2, 2, 2, 2])]


def _eager_step(param, moments, rows, grad, t):
    """The eager lazy Adam on distinct ``rows`` (Python step count ``t`` and scalars)."""
    state = moments.index_select(0, rows)
    exp_avg, exp_avg_sq = state.unbind(1)
    exp_avg.mul_(BETA1).add_(grad, alpha=1 - BETA1)
    exp_avg_sq.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
    moments.index_copy_(0, rows, state)
    bias1, bias2 = 1 - BETA1 ** t, 1 - BETA2 ** t
    denom = (exp_avg_sq / bias2).sqrt_().add_(EPS)
    param.index_copy_(0, rows, param.index_select(0, rows).addcdiv_(exp_avg, denom,
                                                                   value=-LR / bias1))


def _buffers(valid, padding, row_shape, seed):
    """rows, count and grad of one step; padding gradients are NaN (must never be read)."""
    rows = torch.tensor(valid + padding, dtype=torch.long)
    grad = torch.randn(len(rows), *row_shape, generator=torch.Generator().manual_seed(seed))
    grad[len(valid):] = float("nan")
    return rows, torch.tensor(len(valid)), grad


def _run(fn, param, moments, step_dtype, device, row_shape):
    """Runs STEPS with ``fn``; the table and moments after each step, on the CPU."""
    param, moments = param.clone().to(device), moments.clone().to(device)
    step = torch.zeros((), dtype=step_dtype, device=device)
    history = []
    for seed, (valid, padding) in enumerate(STEPS):
        rows, count, grad = _buffers(valid, padding, row_shape, seed)
        step += 1
        fn(param, moments, rows.to(device), count.to(device), grad.to(device), step, LR, BETA1,
           BETA2, EPS)
        history.append((param.cpu().clone(), moments.cpu().clone()))
    return history


def _initial(row_shape, dtype=torch.float32):
    param = torch.randn(N, *row_shape, generator=torch.Generator().manual_seed(99)).to(dtype)
    return param, torch.zeros(N, 2, *row_shape)


@pytest.mark.parametrize("row_shape", [(7,), (3, 3)])
@pytest.mark.parametrize("step_dtype", [torch.float32, torch.int64])
@pytest.mark.parametrize("path", ["kernel", "reference"])
def test_matches_eager_lazy_adam_over_steps(kernel_device, path, step_dtype, row_shape):
    param, moments = _initial(row_shape)
    fn, device = ((lazy_adam_step_, kernel_device) if path == "kernel" else
                  (lazy_adam_step_reference_, torch.device("cpu")))
    history = _run(fn, param, moments, step_dtype, device, row_shape)
    expected_param, expected_moments = param.clone(), moments.clone()
    for t, ((valid, padding), (got_param, got_moments)) in enumerate(zip(STEPS, history), 1):
        rows, count, grad = _buffers(valid, padding, row_shape, t - 1)
        _eager_step(expected_param, expected_moments, rows[:count], grad[:count], t)
        torch.testing.assert_close(got_param, expected_param, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(got_moments, expected_moments, rtol=1e-6, atol=1e-9)
    untouched = torch.tensor([6, 8, 10])  # never valid: bitwise as they were
    assert torch.equal(history[-1][0][untouched], param[untouched])
    assert (history[-1][1][untouched] == 0).all()
    assert torch.equal(history[-1][0], history[-2][0])  # count = 0: nothing changes


def test_matches_torch_adam_on_rows_every_step_touches(kernel_device):
    """Rows that every step touches follow :class:`torch.optim.Adam`."""
    gen = torch.Generator().manual_seed(5)
    param, moments = torch.randn(N, 5, generator=gen), torch.zeros(N, 2, 5)
    dense = param.clone().requires_grad_()
    adam = torch.optim.Adam([dense], lr=LR, betas=(BETA1, BETA2), eps=EPS, foreach=False)
    rows = torch.randperm(N, generator=gen)
    param, moments = param.to(kernel_device), moments.to(kernel_device)
    step = torch.zeros((), dtype=torch.int64, device=kernel_device)
    for _ in range(3):
        grad = torch.randn(N, 5, generator=gen)
        dense.grad = torch.empty_like(grad).index_copy_(0, rows, grad)
        adam.step()
        step += 1
        lazy_adam_step_(param, moments, rows.to(kernel_device),
                        torch.tensor(N, device=kernel_device), grad.to(kernel_device), step,
                        LR, BETA1, BETA2, EPS)
    torch.testing.assert_close(param.cpu(), dense.detach())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_tables_with_float32_moments(kernel_device, dtype):
    param, moments = _initial((5,), dtype)
    kernel = _run(lazy_adam_step_, param, moments, torch.int64, kernel_device, (5,))
    reference = _run(lazy_adam_step_reference_, param, moments, torch.int64, torch.device("cpu"),
                     (5,))
    for (got_param, got_moments), (ref_param, ref_moments) in zip(kernel, reference):
        assert got_param.dtype == dtype and got_moments.dtype == torch.float32
        # Same float32 arithmetic, rounded to the dtype: at most one ulp apart.
        torch.testing.assert_close(got_param, ref_param)
        torch.testing.assert_close(got_moments, ref_moments, rtol=1e-6, atol=1e-9)
    untouched = torch.tensor([6, 8, 10])
    assert torch.equal(kernel[-1][0][untouched], param[untouched])


def test_empty_buffer_and_repeated_calls(kernel_device):
    """S = 0 changes nothing; the same step twice from the same state gives the same bits."""
    param, moments = _initial((7,))
    param, moments = param.to(kernel_device), moments.to(kernel_device)
    before = param.clone()
    step = torch.ones((), device=kernel_device)
    lazy_adam_step_(param, moments, torch.zeros(0, dtype=torch.long, device=kernel_device),
                    torch.tensor(0, device=kernel_device),
                    torch.zeros(0, 7, device=kernel_device), step, LR, BETA1, BETA2, EPS)
    assert torch.equal(param, before) and (moments == 0).all()
    rows, count, grad = (t.to(kernel_device) for t in _buffers(*STEPS[0], (7,), seed=0))
    results = []
    for _ in range(2):
        p, m = before.clone(), torch.zeros_like(moments)
        lazy_adam_step_(p, m, rows, count, grad, step, LR, BETA1, BETA2, EPS)
        results.append((p, m))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1],
                                                                      results[1][1])


def test_cpu_tensors_run_the_reference(monkeypatch):
    monkeypatch.setattr("mmkgc_pyg.kernels.utils._mode", "auto")
    param, moments = _initial((7,))
    got = _run(lazy_adam_step_, param, moments, torch.int64, torch.device("cpu"), (7,))
    expected = _run(lazy_adam_step_reference_, param, moments, torch.int64, torch.device("cpu"),
                    (7,))
    for a, b in zip(got, expected):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_compiles_with_torch_compile(kernel_device):
    """The custom op (mutating the table and moments) traces into one graph."""
    param, moments = _initial((7,))
    compiled = torch.compile(lazy_adam_step_, backend="aot_eager", fullgraph=True)
    for got, expected in zip(_run(compiled, param, moments, torch.int64, kernel_device, (7,)),
                             _run(lazy_adam_step_, param, moments, torch.int64, kernel_device,
                                  (7,))):
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


@pytest.mark.parametrize("change", [
    {"moments": torch.zeros(N, 2, 7, dtype=torch.float64)},
    {"moments": torch.zeros(N, 7)},
    {"param": torch.zeros(N, 7, dtype=torch.float64)},
    {"rows": torch.zeros(3)},
    {"grad": torch.zeros(4, 7)},
    {"count": torch.tensor([3])},
    {"step": torch.tensor(1.0, dtype=torch.float64)},
    {"lr": 0.0},
    {"beta2": 1.0},
])
def test_bad_arguments_raise(change):
    args = {"param": torch.zeros(N, 7), "moments": torch.zeros(N, 2, 7),
            "rows": torch.tensor([1, 2, 3]), "count": torch.tensor(3),
            "grad": torch.zeros(3, 7), "step": torch.tensor(1), "lr": LR, "beta1": BETA1,
            "beta2": BETA2, "eps": EPS, **change}
    with pytest.raises(InvalidArgumentError, match="lazy_adam_step_"):
        lazy_adam_step_(**args)
