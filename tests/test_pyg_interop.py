"""MMKGCModel as a drop-in for PyG's KGE models, and the README's path from a PyG
dataset to a trained model."""
import re
import shutil
from pathlib import Path

import pytest
import torch
import torch.optim as optim

from mmkgc_pyg.data import SyntheticGraph, make_synthetic_kg
from mmkgc_pyg.nn import MMKGCModel

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
def test_pygs_kge_example_runs_with_mmkgc_model_swapped_in():
    """PyG's ``examples/kge_fb15k_237.py``, shortened (2 epochs, a small synthetic graph in
    place of FB15k-237), with ``MMKGCModel`` in place of ``RotatE`` and nothing else changed."""
    kg = make_synthetic_kg(SyntheticGraph(
        num_entities=300, num_relations=5, num_clusters=10, domain_size=4, num_train=1200,
        num_valid=60, num_test=60))
    device = 'cpu'
    train_data, val_data, test_data = (kg.to_data(s) for s in ("train", "val", "test"))

    model = MMKGCModel(
        num_nodes=train_data.num_nodes,
        num_relations=train_data.num_edge_types,
        hidden_channels=50,
    ).to(device)

    loader = model.loader(
        head_index=train_data.edge_index[0],
        rel_type=train_data.edge_type,
        tail_index=train_data.edge_index[1],
        batch_size=1000,
        shuffle=True,
    )

    optimizer = optim.Adam(model.parameters(), lr=0.01)

    def train():
        model.train()
        total_loss = total_examples = 0
        for head_index, rel_type, tail_index in loader:
            optimizer.zero_grad()
            loss = model.loss(head_index, rel_type, tail_index)
            loss.backward()
            optimizer.step()
            total_loss += float(loss) * head_index.numel()
            total_examples += head_index.numel()
        return total_loss / total_examples

    @torch.no_grad()
    def test(data):
        model.eval()
        return model.test(
            head_index=data.edge_index[0],
            rel_type=data.edge_type,
            tail_index=data.edge_index[1],
            batch_size=20000,
            k=10,
        )

    losses = [train() for _ in range(1, 3)]
    rank, mrr, hits = test(val_data)
    print(f'Val Mean Rank: {rank:.2f}, Val MRR: {mrr:.4f}, Val Hits@10: {hits:.4f}')
    rank, mrr, hits_at_10 = test(test_data)
    assert losses[1] < losses[0]
    assert 0 <= rank < 300 and 0 < mrr <= 1 and 0 <= hits_at_10 <= 1


def test_readme_python_paths_run_as_written(datasets_dir, tmp_path):
    """The README's pipeline call and its PyG dataset path, run as written on DB15K (tiny
    configurations)."""
    code = re.search(r"```python\n(# One call.*?)```", README.read_text(), re.S)[1]
    root = tmp_path / "DB15K"
    shutil.copytree(datasets_dir / "DB15K", root / "raw")
    tiny = "dim=4, negatives=4, epochs=1, eval_every=1"
    code = (code.replace('"datasets/DB15K"', repr(str(datasets_dir / "DB15K")))
            .replace('{"epochs": 100}', f"dict({tiny})")
            .replace('"runs/db15k', '"' + str(tmp_path / "runs"))
            .replace('"data/DB15K"', repr(str(root)))
            .replace("TrainConfig(epochs=100)", f"TrainConfig({tiny})")
            .replace("trainer.fit([print])", "trainer.fit([])"))
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    result, trainer = namespace["result"], namespace["trainer"]
    assert result.model.modalities == ["textual"] and result.model.num_nodes == 12842
    assert (tmp_path / "runs" / "model.pt").is_file()
    assert (tmp_path / "runs-copy" / "config.yaml").is_file()
    assert trainer.model.num_nodes == 12842 and trainer.stopper.best_valid["mrr"] > 0


def test_readme_library_example_runs_as_written():
    code = re.search(r"```python\n(import torch\nfrom mmkgc_pyg.nn import AdaMF.*?)```",
                     README.read_text(), re.S)[1]
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["joint"].shape == (100, 500) and namespace["weights"].shape == (100, 3)
    assert namespace["best_tails"].shape == (1, 5) and 0 < namespace["mrr"] <= 1
