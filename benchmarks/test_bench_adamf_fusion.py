"""Fused AdaMF attention: Triton kernels vs the PyTorch reference, and the copy roofline.

Each group (one per N) holds forward and forward+backward for both paths and, on CUDA,
a device-to-device copy of a tensor the size of ``embs``. ``extra_info["GB/s"]`` uses the
minimum traffic of a fused implementation (fp32, N entities, M modalities, D dims):

* forward:  read embs ``4NMD`` + mask ``NM``, write joint ``4ND`` + weights ``4NM``;
* backward: read embs ``4NMD`` + grad_joint ``4ND`` + weights ``4NM``, write grad_embs
  ``4NMD`` (the attn-gradient partials are ``O(D)``, not counted);
* forward+backward: the sum of both.

The reference moves more bytes than that (it materialises ``tanh(embs)`` and more), so
for it the figure is an effective bandwidth that compares times directly.
``fraction_of_copy_bandwidth`` divides by the bandwidth of a 1 GiB device-to-device
copy (bytes read + written) measured once per module, as in docs/anchors.md.

Run: ``pytest benchmarks/test_bench_adamf_fusion.py --benchmark-only``. Without CUDA only
the smallest reference cases run.
"""
import pytest
import torch

from mmkgc_pyg.kernels.adamf_fusion import adamf_fusion, adamf_fusion_reference

M, D = 3, 500
SIZES = [
    12_842,  # DB15K's entity count
    pytest.param(100_000, marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason="N >= 1e5 runs on CUDA only (CPU too slow)")),
    pytest.param(1_000_000, marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason="N >= 1e5 runs on CUDA only (CPU too slow)")),
]
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="Triton kernels are benchmarked on CUDA only")


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def forward_bytes(n: int) -> int:
    return 4 * n * M * D + n * M + 4 * n * D + 4 * n * M


def backward_bytes(n: int) -> int:
    return 2 * 4 * n * M * D + 4 * n * D + 4 * n * M


@pytest.fixture(scope="module")
def copy_gbps():
    """Device-to-device copy bandwidth in GB/s (read + write), or None without CUDA."""
    if DEVICE.type != "cuda":
        return None
    src = torch.empty(2**28, device=DEVICE)  # 1 GiB
    dst = torch.empty_like(src)
    dst.copy_(src)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(20):
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2 * src.numel() * 4 / sorted(times)[len(times) // 2] / 1e9


def make_inputs(n: int):
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    embs = torch.randn(n, M, D, generator=gen, device=DEVICE)
    attn = torch.randn(D, generator=gen, device=DEVICE) / D**0.5
    mask = torch.rand(n, M, generator=gen, device=DEVICE) < 0.8
    grad_joint = torch.randn(n, D, generator=gen, device=DEVICE)
    return embs, attn, mask, grad_joint


def record(benchmark, nbytes: int, copy_gbps):
    benchmark.extra_info["bytes"] = nbytes
    if benchmark.stats is None:  # --benchmark-disable
        return
    gbps = nbytes / benchmark.stats.stats.median / 1e9
    benchmark.extra_info["GB/s"] = round(gbps, 1)
    if copy_gbps:
        benchmark.extra_info["copy GB/s"] = round(copy_gbps, 1)
        benchmark.extra_info["fraction_of_copy_bandwidth"] = round(gbps / copy_gbps, 3)


PATHS = [pytest.param("triton", marks=needs_cuda), "reference"]


@pytest.fixture
def fusion(request, monkeypatch):
    if request.param == "triton":
        monkeypatch.setenv("MMKGC_KERNELS", "triton")
        return adamf_fusion
    return adamf_fusion_reference


@pytest.mark.parametrize("fusion", PATHS, indirect=True)
@pytest.mark.parametrize("n", SIZES)
def test_forward(benchmark, fusion, n, copy_gbps):
    benchmark.group = f"adamf_fusion N={n}"
    embs, attn, mask, _ = make_inputs(n)

    def run():
        with torch.no_grad():
            fusion(embs, attn, mask)
        sync()

    benchmark(run)
    record(benchmark, forward_bytes(n), copy_gbps)


@pytest.mark.parametrize("fusion", PATHS, indirect=True)
@pytest.mark.parametrize("n", SIZES)
def test_forward_backward(benchmark, fusion, n, copy_gbps):
    benchmark.group = f"adamf_fusion N={n}"
    embs, attn, mask, grad_joint = make_inputs(n)
    embs.requires_grad_()
    attn.requires_grad_()

    def run():
        joint, _ = fusion(embs, attn, mask)
        torch.autograd.grad(joint, (embs, attn), grad_joint)
        sync()

    benchmark(run)
    record(benchmark, forward_bytes(n) + backward_bytes(n), copy_gbps)


@needs_cuda
@pytest.mark.parametrize("n", SIZES)
def test_copy_roofline(benchmark, n, copy_gbps):
    """A device-to-device copy of embs' size: the speed of light for this group."""
    benchmark.group = f"adamf_fusion N={n}"
    src = torch.randn(n, M, D, device=DEVICE)
    dst = torch.empty_like(src)

    def run():
        dst.copy_(src)
        sync()

    benchmark(run)
    record(benchmark, 2 * src.numel() * 4, copy_gbps)
