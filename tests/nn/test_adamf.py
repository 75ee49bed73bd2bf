import pytest
import torch

from mmkgc_pyg.nn import AdaMF


def reference_fusion(struct, features, masks, layer):
    """float64 AdaMF written from the formulas, one entity at a time."""
    joint = torch.zeros(struct.shape, dtype=torch.float64)
    weights = torch.zeros(struct.size(0), 1 + len(features), dtype=torch.float64)
    w = layer.attn.double()
    for e in range(struct.size(0)):
        embs, present = [struct[e].double()], [True]
        for name, x in features.items():
            lin = layer.projections[name]
            embs.append(lin.weight.double() @ x[e].double() + lin.bias.double())
            present.append(bool(masks[name][e]))
        u = torch.stack([w @ torch.tanh(p) for p in embs])
        u[~torch.tensor(present)] = float("-inf")
        a = torch.softmax(u, 0)
        weights[e] = a
        joint[e] = sum(a_m * p for a_m, p in zip(a, embs))
    return joint, weights


def test_adamf_matches_formulas_with_masks():
    torch.manual_seed(0)
    n, d = 9, 6
    layer = AdaMF({"visual": 5, "textual": 3}, d)
    struct = torch.randn(n, d)
    features = {"visual": torch.randn(n, 5), "textual": torch.randn(n, 3)}
    masks = {"visual": torch.rand(n) < 0.5, "textual": torch.rand(n) < 0.5}
    masks["visual"][0] = masks["textual"][0] = False  # an entity with no extra modality
    joint, weights = layer(struct, features, masks, return_attention_weights=True)
    ref_joint, ref_weights = reference_fusion(struct, features, masks, layer)
    torch.testing.assert_close(joint.double(), ref_joint, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights.double(), ref_weights, atol=1e-6, rtol=1e-5)
    assert torch.equal(weights[:, 1] == 0, ~masks["visual"])  # exactly zero when absent
    assert torch.equal(weights[:, 2] == 0, ~masks["textual"])
    torch.testing.assert_close(joint[0], struct[0])  # falls back to structure
    torch.testing.assert_close(weights.sum(1), torch.ones(n))


def test_adamf_is_project_then_fuse():
    torch.manual_seed(1)
    layer = AdaMF({"a": 4}, 8)
    struct, x = torch.randn(5, 8), {"a": torch.randn(5, 4)}
    embs = layer.project(struct, x)
    assert embs.shape == (5, 2, 8)
    torch.testing.assert_close(embs[:, 0], struct)
    torch.testing.assert_close(embs[:, 1], layer.projections["a"](x["a"]))
    joint = layer(struct, x)
    assert joint.shape == (5, 8)
    _, weights = layer.fuse(embs, return_attention_weights=True)
    torch.testing.assert_close(joint, (weights[:, :, None] * embs).sum(1))
    assert layer.modality_names == ["structure", "a"]
    with pytest.raises(ValueError, match="'a'"):
        layer(struct, {})


def test_adamf_lazy_input_sizes():
    """``-1`` sizes are inferred at the first call, as PyG's lazy layers do."""
    torch.manual_seed(3)
    layer = AdaMF({"visual": -1, "textual": -1}, 6)
    x = {"visual": torch.randn(4, 9), "textual": torch.randn(4, 5)}
    joint = layer(torch.randn(4, 6), x)
    assert joint.shape == (4, 6)
    assert layer.projections["visual"].weight.shape == (6, 9)
    assert layer.projections["textual"].weight.shape == (6, 5)


def test_adamf_reset_parameters_redraws():
    torch.manual_seed(4)
    layer = AdaMF({"a": 4}, 8)
    before = [p.detach().clone() for p in layer.parameters()]
    layer.reset_parameters()
    assert all(not torch.equal(b, p) for b, p in zip(before, layer.parameters()))


def test_adamf_gradients_reach_every_parameter():
    torch.manual_seed(2)
    layer = AdaMF({"a": 4, "b": 2}, 6)
    struct = torch.randn(7, 6, requires_grad=True)
    joint = layer(struct, {"a": torch.randn(7, 4), "b": torch.randn(7, 2)})
    joint.square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert struct.grad.abs().sum() > 0
