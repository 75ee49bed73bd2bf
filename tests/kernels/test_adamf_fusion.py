"""Fused AdaMF attention: Triton kernels (on ``--kernel-device``) vs a float64 reference."""
import pytest
import torch

from mmkgc_pyg.kernels.adamf_fusion import adamf_fusion, adamf_fusion_reference

SHAPES = [(0, 2, 7), (1, 1, 1), (5, 3, 37), (33, 2, 64), (100, 3, 7)]
MASKS = ["none", "random", "extras_absent", "all_present"]


def make_inputs(n, m, d, mask_kind, seed=0):
    gen = torch.Generator().manual_seed(seed)
    embs = torch.randn(n, m, d, generator=gen, dtype=torch.float64)
    attn = torch.randn(d, generator=gen, dtype=torch.float64)
    mask = {
        "none": None,
        "random": torch.rand(n, m, generator=gen) < 0.5,
        "extras_absent": torch.zeros(n, m, dtype=torch.bool),  # column 0 still counts
        "all_present": torch.ones(n, m, dtype=torch.bool),
    }[mask_kind]
    return embs, attn, mask


def on(device, *tensors):
    return [None if t is None else t.to(device) for t in tensors]


def to_cpu(tensors):
    return [t.cpu() for t in tensors]


def present(mask, n, m):
    out = torch.ones(n, m, dtype=torch.bool) if mask is None else mask.clone()
    out[:, 0] = True
    return out


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mask_kind", MASKS)
def test_forward_matches_float64(kernel_device, shape, mask_kind):
    embs, attn, mask = make_inputs(*shape, mask_kind)
    joint, weights = to_cpu(adamf_fusion(*on(kernel_device, embs.float(), attn.float(), mask)))
    ref_joint, ref_weights = adamf_fusion_reference(embs, attn, mask)
    assert joint.dtype == torch.float32 and weights.dtype == torch.float32
    assert joint.shape == (shape[0], shape[2]) and weights.shape == shape[:2]
    torch.testing.assert_close(joint.double(), ref_joint, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights.double(), ref_weights, atol=1e-6, rtol=1e-5)
    # Absent modalities weigh exactly zero; present ones form a distribution.
    keep = present(mask, *shape[:2])
    assert torch.all(weights[~keep] == 0.0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(shape[0]), atol=1e-6, rtol=0)


def test_no_extra_modality_falls_back_to_structure(kernel_device):
    embs, attn, _ = make_inputs(9, 3, 37, "none")
    mask = torch.zeros(9, 3, dtype=torch.bool)
    mask[::2, 1] = True
    mask[:, 0] = False  # ignored: column 0 is always present
    joint, weights = to_cpu(adamf_fusion(*on(kernel_device, embs.float(), attn.float(), mask)))
    lone = ~mask[:, 1]
    assert torch.equal(weights[lone], torch.tensor([1.0, 0.0, 0.0]).expand(int(lone.sum()), 3))
    assert torch.equal(joint[lone], embs.float()[lone, 0])
    assert torch.all(weights[~lone, :2] > 0) and torch.all(weights[:, 2] == 0)


def test_bfloat16(kernel_device):
    embs, attn, mask = make_inputs(33, 3, 37, "random", seed=1)
    embs_bf = embs.to(torch.bfloat16)
    joint, weights = to_cpu(adamf_fusion(*on(kernel_device, embs_bf, attn.float(), mask)))
    assert joint.dtype == torch.bfloat16 and weights.dtype == torch.float32
    # The oracle sees the same bf16-rounded inputs; only the output rounding differs.
    ref_joint, ref_weights = adamf_fusion_reference(embs_bf.double(), attn.float().double(), mask)
    torch.testing.assert_close(joint.double(), ref_joint, atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(weights.double(), ref_weights, atol=1e-5, rtol=1e-4)


def _grads(fn, embs, attn, mask, grad_joint, grad_weights, device="cpu"):
    """Gradients of (embs, attn) on the CPU, computed on ``device``."""
    embs, attn, mask = on(device, embs, attn, mask)
    embs, attn = embs.detach().requires_grad_(), attn.detach().requires_grad_()
    joint, weights = fn(embs, attn, mask)
    outputs, grads = [], []
    for out, grad in ((joint, grad_joint), (weights, grad_weights)):
        if grad is not None:
            outputs.append(out)
            grads.append(grad.to(out.device, out.dtype))
    return to_cpu(torch.autograd.grad(outputs, (embs, attn), grads))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mask_kind", ["none", "random", "extras_absent"])
@pytest.mark.parametrize("upstream", ["joint", "weights", "both"])
def test_gradients_match_float64(kernel_device, shape, mask_kind, upstream):
    embs, attn, mask = make_inputs(*shape, mask_kind, seed=2)
    gen = torch.Generator().manual_seed(3)
    grad_joint = torch.randn(shape[0], shape[2], generator=gen, dtype=torch.float64)
    grad_weights = torch.randn(*shape[:2], generator=gen, dtype=torch.float64)
    if upstream == "joint":
        grad_weights = None
    elif upstream == "weights":
        grad_joint = None
    d_embs, d_attn = _grads(adamf_fusion, embs.float(), attn.float(), mask, grad_joint,
                            grad_weights, kernel_device)
    ref_embs, ref_attn = _grads(adamf_fusion_reference, embs, attn, mask, grad_joint,
                                grad_weights)
    assert d_embs.dtype == torch.float32 and d_attn.dtype == torch.float32
    torch.testing.assert_close(d_embs.double(), ref_embs, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(d_attn.double(), ref_attn, atol=1e-4, rtol=1e-4)


def test_gradients_bfloat16(kernel_device):
    embs, attn, mask = make_inputs(33, 3, 37, "random", seed=4)
    embs_bf = embs.to(torch.bfloat16)
    grad_joint = torch.randn(33, 37, generator=torch.Generator().manual_seed(5),
                             dtype=torch.float64)
    d_embs, d_attn = _grads(adamf_fusion, embs_bf, attn.float(), mask, grad_joint, None,
                            kernel_device)
    assert d_embs.dtype == torch.bfloat16 and d_attn.dtype == torch.float32
    ref_embs, ref_attn = _grads(adamf_fusion_reference, embs_bf.double(), attn.float().double(),
                                mask, grad_joint, None)
    torch.testing.assert_close(d_embs.double(), ref_embs, atol=5e-2, rtol=2e-2)
    torch.testing.assert_close(d_attn.double(), ref_attn, atol=5e-2, rtol=2e-2)


def test_attn_gradient_is_deterministic(kernel_device):
    embs, attn, mask = make_inputs(100, 3, 7, "random", seed=6)
    grad_joint = torch.randn(100, 7, generator=torch.Generator().manual_seed(7))
    runs = [_grads(adamf_fusion, embs.float(), attn.float(), mask, grad_joint, None,
                   kernel_device)[1] for _ in range(2)]
    assert torch.equal(runs[0], runs[1])


def test_empty_input_gives_empty_gradients(kernel_device):
    embs = torch.randn(0, 3, 5, device=kernel_device, requires_grad=True)
    attn = torch.randn(5, device=kernel_device, requires_grad=True)
    joint, weights = adamf_fusion(embs, attn)
    assert joint.shape == (0, 5) and weights.shape == (0, 3)
    (joint.sum() + weights.sum()).backward()
    assert embs.grad.shape == (0, 3, 5)
    assert torch.equal(attn.grad.cpu(), torch.zeros(5))


def test_non_contiguous_input(kernel_device):
    embs, attn, mask = make_inputs(5, 3, 37, "random", seed=8)
    strided = embs.float().to(kernel_device).transpose(0, 1).contiguous().transpose(0, 1)
    assert not strided.is_contiguous()
    joint, weights = to_cpu(adamf_fusion(strided, *on(kernel_device, attn.float(), mask)))
    ref_joint, ref_weights = adamf_fusion_reference(embs, attn, mask)
    torch.testing.assert_close(joint.double(), ref_joint, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights.double(), ref_weights, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("mode", ["triton", "torch", "auto"])
def test_dispatch(request, monkeypatch, mode):
    # "auto" picks Triton for CUDA tensors only.
    device = request.config.kernel_device
    monkeypatch.setattr("mmkgc_pyg.kernels.utils._mode", mode)
    embs = torch.randn(4, 2, 8, device=device, requires_grad=True)
    joint, _ = adamf_fusion(embs, torch.randn(8, device=device))
    is_triton = "mmkgc_adamf_fusion" in joint.grad_fn.name()  # the custom op
    assert is_triton == (mode == "triton" or (mode == "auto" and device.type == "cuda"))


@pytest.mark.parametrize("embs, attn, mask", [
    (torch.randn(4, 8), torch.randn(8), None),
    (torch.randn(4, 2, 8), torch.randn(7), None),
    (torch.randn(4, 2, 8), torch.randn(8), torch.ones(4, 2)),
    (torch.randn(4, 2, 8), torch.randn(8), torch.ones(4, 3, dtype=torch.bool)),
    (torch.randn(4, 2, 8, dtype=torch.float64), torch.randn(8), None),
])
def test_rejects_bad_input_with_value_errors(embs, attn, mask):
    with pytest.raises(ValueError, match="adamf_fusion"):
        adamf_fusion(embs, attn, mask)
