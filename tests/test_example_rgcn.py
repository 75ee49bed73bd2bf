import functools
import importlib.util
from pathlib import Path

import torch

from utils import random_kg
from mmkgc_pyg.data import SyntheticGraph, make_synthetic_kg

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "adamf_rgcn.py"


def load_example():
    spec = importlib.util.spec_from_file_location("adamf_rgcn", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_lowers_the_loss(monkeypatch, capsys):
    example = load_example()
    # The default graph, shrunk: few relations mean few R-GCN message passes.
    small = SyntheticGraph(num_entities=300, num_relations=3, num_clusters=10, domain_size=4,
                           num_train=2000, num_valid=100, num_test=100)
    monkeypatch.setattr(example, "make_synthetic_kg", functools.partial(make_synthetic_kg,
                                                                        small))
    losses = example.main(steps=10, seed=0, batch_size=256)
    assert len(losses) == 10
    assert sum(losses[-3:]) < sum(losses[:3])
    assert "test filtered MRR" in capsys.readouterr().out


def test_gradients_reach_adamf_through_the_gnn():
    example = load_example()
    torch.manual_seed(0)
    data = random_kg()
    model = example.AdaMFRGCN(data.num_entities, data.num_relations,
                              {m: data.features[m].size(1) for m in data.modalities},
                              hidden_channels=8, num_bases=2)
    example.train_loss(model, example.graph_inputs(data), data.train[:16],
                       num_negatives=4).backward()
    adamf = model.adamf
    for param in [adamf.attn, model.node_emb.weight,
                  *(p for lin in adamf.projections.values() for p in lin.parameters())]:
        assert param.grad is not None and param.grad.abs().sum() > 0
