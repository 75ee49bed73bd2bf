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
copy (bytes read + written) measured once per module, as in docs/anchors.md. Inputs,
byte counts and the copy are ``workloads.py``'s, shared with ``gpu_check.py``.

Run: ``pytest benchmarks/test_bench_adamf_fusion.py --benchmark-only``. Without CUDA only
the smallest reference cases run.
"""
import pytest
import torch

import workloads
from mmkgc_pyg.kernels.adamf_fusion import adamf_fusion, adamf_fusion_reference

M, D = 3, 500
ON_CUDA = torch.cuda.is_available()
CUDA_ONLY = pytest.mark.skipif(not ON_CUDA, reason="N >= 1e5 runs on CUDA only (CPU too slow)")
SIZES = [12_842, pytest.param(100_000, marks=CUDA_ONLY), pytest.param(1_000_000, marks=CUDA_ONLY)]
DEVICE = torch.device("cuda" if ON_CUDA else "cpu")
needs_cuda = pytest.mark.skipif(not ON_CUDA, reason="Triton kernels are benchmarked on CUDA only")
PATHS = [pytest.param("triton", marks=needs_cuda), "reference"]


@pytest.fixture(scope="module")
def copy_bandwidth():
    """Device-to-device copy bandwidth in bytes/s (read + write), or None without CUDA."""
    return workloads.copy_bandwidth(DEVICE) if ON_CUDA else None


@pytest.fixture
def fusion(request, monkeypatch):
    if request.param == "triton":
        monkeypatch.setattr("mmkgc_pyg.kernels.utils._mode", "triton")
        return adamf_fusion
    return adamf_fusion_reference


def record(benchmark, nbytes: int, copy_bandwidth):
    benchmark.extra_info["bytes"] = nbytes
    if benchmark.stats is None:  # --benchmark-disable
        return
    rate = nbytes / benchmark.stats.stats.median
    benchmark.extra_info["GB/s"] = round(rate / 1e9, 1)
    if copy_bandwidth:
        benchmark.extra_info["copy GB/s"] = round(copy_bandwidth / 1e9, 1)
        benchmark.extra_info["fraction_of_copy_bandwidth"] = round(rate / copy_bandwidth, 3)


def timed(fn):
    def run():
        fn()
        workloads.synchronize(DEVICE)
    return run


@pytest.mark.parametrize("fusion", PATHS, indirect=True)
@pytest.mark.parametrize("n", SIZES)
def test_forward(benchmark, fusion, n, copy_bandwidth):
    benchmark.group = f"adamf_fusion N={n}"
    forward, _ = workloads.fusion_runners(fusion, *workloads.fusion_inputs(n, M, D, DEVICE))
    benchmark(timed(forward))
    record(benchmark, workloads.fusion_forward_bytes(n, M, D), copy_bandwidth)


@pytest.mark.parametrize("fusion", PATHS, indirect=True)
@pytest.mark.parametrize("n", SIZES)
def test_forward_backward(benchmark, fusion, n, copy_bandwidth):
    benchmark.group = f"adamf_fusion N={n}"
    _, both = workloads.fusion_runners(fusion, *workloads.fusion_inputs(n, M, D, DEVICE))
    benchmark(timed(both))
    record(benchmark, workloads.fusion_forward_bytes(n, M, D)
           + workloads.fusion_backward_bytes(n, M, D), copy_bandwidth)


@needs_cuda
@pytest.mark.parametrize("n", SIZES)
def test_copy_roofline(benchmark, n, copy_bandwidth):
    """A device-to-device copy of embs' size: the speed of light for this group."""
    benchmark.group = f"adamf_fusion N={n}"
    src = torch.randn(n, M, D, device=DEVICE)
    dst = torch.empty_like(src)
    benchmark(timed(lambda: dst.copy_(src)))
    record(benchmark, 2 * src.numel() * 4, copy_bandwidth)
