"""RotatE candidate scoring for training (mmkgc_pyg.kernels.rotate_train): forward and
gradients against autograd through the float64 reference, on ``--kernel-device``; the
gradients are bitwise reproducible (Triton path and reference)."""
import pytest
import torch

from mmkgc_pyg.kernels import rotate_train
from mmkgc_pyg.kernels.rotate_train import rotate_gather_scores, rotate_gather_scores_reference


def _inputs(B, C, N, k, seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    query = torch.randn(B, 2 * k, generator=gen).to(dtype)
    entities = torch.randn(N, 2 * k, generator=gen).to(dtype)
    index = torch.randint(0, N, (B, C), generator=gen)
    return query, entities, index


def _forward_backward(fn, query, entities, index, grad_out, device="cpu"):
    """Scores and gradients, computed on ``device``, returned on the CPU."""
    query = query.detach().to(device).requires_grad_()
    entities = entities.detach().to(device).requires_grad_()
    scores = fn(query, entities, index.to(device), 12.0)
    scores.backward(grad_out.to(device))
    return scores.detach().cpu(), query.grad.cpu(), entities.grad.cpu()


@pytest.mark.parametrize("B,C,N,k", [(1, 1, 1, 1), (5, 13, 7, 3), (6, 19, 40, 11),
                                     (19, 5, 3, 9)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_forward_and_gradients_match_float64(kernel_device, B, C, N, k, dtype):
    # N < C for some cases: candidates repeat within a query and across queries, so the
    # entity gradient accumulates several contributions per row.
    query, entities, index = _inputs(B, C, N, k, seed=B + C + N + k, dtype=dtype)
    grad_out = torch.randn(B, C, generator=torch.Generator().manual_seed(k))
    scores, grad_query, grad_entities = _forward_backward(rotate_gather_scores, query, entities,
                                                          index, grad_out, kernel_device)
    expected = _forward_backward(rotate_gather_scores_reference, query.double(),
                                 entities.double(), index, grad_out.double())
    assert scores.dtype == torch.float32 and scores.shape == (B, C)
    assert grad_query.dtype == dtype and grad_entities.dtype == dtype
    tol = {"rtol": 1e-5, "atol": 1e-4} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 5e-2}
    torch.testing.assert_close(scores.double(), expected[0], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(grad_query.double(), expected[1], **tol)
    torch.testing.assert_close(grad_entities.double(), expected[2], **tol)


# Duplicates within a query (4, 4) and across queries (0, 4, 7, 11); entities 1-3, 5, 6, 8-10,
# 12-18 named by no candidate. 12 positions, 5 segments: 7 of the 12 segment programs
# return early. k = 9: an odd number of complex dims, over two blocks in the interpreter.
_DUPLICATES = torch.tensor([[4, 4, 7, 0], [7, 11, 4, 4], [19, 0, 7, 11]])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gradients_are_reproducible_and_exact(kernel_device, dtype):
    query, entities, _ = _inputs(3, 4, 20, 9, seed=11, dtype=dtype)
    grad_out = torch.randn(3, 4, generator=torch.Generator().manual_seed(12))
    first = _forward_backward(rotate_gather_scores, query, entities, _DUPLICATES, grad_out,
                              kernel_device)
    again = _forward_backward(rotate_gather_scores, query, entities, _DUPLICATES, grad_out,
                              kernel_device)
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    expected = _forward_backward(rotate_gather_scores_reference, query.double(),
                                 entities.double(), _DUPLICATES, grad_out.double())
    # The sums are exact in float64 up to the fp32 arithmetic, then rounded to the dtype.
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 8e-3, "atol": 1e-2}
    torch.testing.assert_close(first[1].double(), expected[1], **tol)
    torch.testing.assert_close(first[2].double(), expected[2], **tol)
    named = torch.zeros(20, dtype=torch.bool)
    named[_DUPLICATES.flatten()] = True
    assert (first[2][~named] == 0).all() and (first[2][named] != 0).all()


def test_gradients_do_not_depend_on_launch_settings(kernel_device, monkeypatch):
    """Terms are added one at a time in a fixed order: other blocks, same bits."""
    query, entities, _ = _inputs(3, 4, 20, 9, seed=13)
    grad_out = torch.randn(3, 4, generator=torch.Generator().manual_seed(14))
    default = _forward_backward(rotate_gather_scores, query, entities, _DUPLICATES, grad_out,
                                kernel_device)
    monkeypatch.setattr(rotate_train, "GATHER_BACKWARD_BLOCKS",
                        {**rotate_train.GATHER_BACKWARD_BLOCKS, "BLOCK_K": 16, "UNROLL": 3})
    other = _forward_backward(rotate_gather_scores, query, entities, _DUPLICATES, grad_out,
                              kernel_device)
    assert torch.equal(default[1], other[1]) and torch.equal(default[2], other[2])


def test_reference_gradients_are_reproducible_with_threads():
    """Two threads, duplicate rows: the reference's entity gradient sums each row in a fixed
    order (``entities[index]`` accumulates with atomics in parallel and differs run to run;
    this size is above its parallel threshold)."""
    query, entities, index = _inputs(64, 64, 50, 8, seed=15)
    grad_out = torch.randn(64, 64, generator=torch.Generator().manual_seed(16))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = [_forward_backward(rotate_gather_scores_reference, query, entities, index,
                                  grad_out) for _ in range(5)]
    finally:
        torch.set_num_threads(threads)
    for run in runs[1:]:
        assert torch.equal(run[1], runs[0][1]) and torch.equal(run[2], runs[0][2])


def test_compiles_with_torch_compile(kernel_device):
    """The forward and backward custom ops trace into one graph (``aot_eager``: no
    compiler needed); same scores and gradients as eager."""
    query, entities, index = _inputs(4, 5, 6, 3, seed=17)
    grad_out = torch.randn(4, 5, generator=torch.Generator().manual_seed(18))
    compiled = torch.compile(rotate_gather_scores, backend="aot_eager", fullgraph=True)
    expected = _forward_backward(rotate_gather_scores, query, entities, index, grad_out,
                                 kernel_device)
    for a, b in zip(_forward_backward(compiled, query, entities, index, grad_out,
                                      kernel_device), expected):
        assert torch.equal(a, b)


def test_repeated_candidate_accumulates(kernel_device):
    """The same entity three times in one query's row gets three times the gradient."""
    query, entities, _ = _inputs(2, 3, 4, 5, seed=3)
    index = torch.tensor([[2, 2, 2], [1, 3, 0]])
    once = _forward_backward(rotate_gather_scores, query[:1], entities, index[:1, :1],
                             torch.ones(1, 1), kernel_device)
    thrice = _forward_backward(rotate_gather_scores, query, entities, index,
                               torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]), kernel_device)
    torch.testing.assert_close(thrice[2][2], 3 * once[2][2])
    torch.testing.assert_close(thrice[1][0], 3 * once[1][0])


def test_zero_modulus_gives_finite_gradients(kernel_device):
    """Candidate equal to the query in some complex dims: |z| = 0 there, gradient 0."""
    query, entities, index = _inputs(3, 4, 5, 6, seed=4)
    entities[index[0, 0]] = query[0]  # every dim zero
    entities[index[1, 1], [0, 6]] = query[1, [0, 6]]  # one complex dim zero
    grad_out = torch.ones(3, 4)
    scores, grad_query, grad_entities = _forward_backward(rotate_gather_scores, query, entities,
                                                          index, grad_out, kernel_device)
    expected = _forward_backward(rotate_gather_scores_reference, query.double(),
                                 entities.double(), index, grad_out.double())
    assert torch.isfinite(grad_query).all() and torch.isfinite(grad_entities).all()
    assert scores[0, 0] == 12.0
    torch.testing.assert_close(grad_query.double(), expected[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_entities.double(), expected[2], rtol=1e-5, atol=1e-5)


def test_reference_gradcheck():
    query, entities, index = _inputs(3, 4, 5, 2, seed=5, dtype=torch.float64)
    torch.autograd.gradcheck(
        lambda q, e: rotate_gather_scores_reference(q, e, index, 12.0),
        (query.requires_grad_(), entities.requires_grad_()))


@pytest.mark.parametrize("B,C", [(3, 0), (0, 4)])
def test_empty_candidates(kernel_device, B, C):
    query, entities, _ = _inputs(B, C, 5, 2, seed=6)
    scores, grad_query, grad_entities = _forward_backward(
        rotate_gather_scores, query, entities, torch.zeros(B, C, dtype=torch.long),
        torch.zeros(B, C), kernel_device)
    assert scores.shape == (B, C) and grad_query.shape == (B, 4)
    assert (grad_query == 0).all() and (grad_entities == 0).all()


def test_torch_mode_runs_the_reference(monkeypatch):
    monkeypatch.setattr("mmkgc_pyg.kernels.utils._mode", "torch")
    query, entities, index = _inputs(4, 3, 5, 2, seed=7, dtype=torch.float64)
    scores = rotate_gather_scores(query, entities, index, 12.0)
    assert scores.dtype == torch.float64  # the kernel returns float32
    torch.testing.assert_close(scores, rotate_gather_scores_reference(query, entities, index,
                                                                      12.0), rtol=0, atol=0)


def test_bad_index_raises_value_error():
    query, entities, index = _inputs(4, 3, 5, 2, seed=8)
    with pytest.raises(ValueError, match="index"):
        rotate_gather_scores(query, entities, index[:3], 12.0)
    with pytest.raises(ValueError, match="index"):
        rotate_gather_scores(query, entities, index.float(), 12.0)
