"""Same seed, same device, same result: two identical library runs on the CPU with two
threads (the threads a 2-core machine runs) end bit for bit equal."""
import pytest
import torch

from mmkgc_pyg.data import SyntheticGraph, make_synthetic_kg
from mmkgc_pyg.training import TrainConfig, Trainer, build_model


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # also on one core: two threads split the work alike
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("protocol", ["ours", "reference"])
def test_two_identical_runs_are_bitwise_equal(two_threads, protocol):
    # Large enough that the gathers' and reductions' CPU kernels split work across threads.
    data = make_synthetic_kg(SyntheticGraph(num_entities=1000, num_relations=6,
                                            num_train=1200, num_valid=40, num_test=40))
    config = TrainConfig(dim=16, margin=6.0, negatives=16, batch_size=256, lr=5e-3,
                         lr_g=1e-3, mu=0.1, epochs=2, eval_every=1, protocol=protocol)

    def run():
        torch.manual_seed(0)
        model = build_model(data, config)
        history = []
        Trainer(model, data, config, progress=False).fit([history.append])
        return model.state_dict(), history

    (first, first_history), (second, second_history) = run(), run()
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert [(r["loss"], r["generator_loss"], r["valid"]["mrr"]) for r in first_history] == \
        [(r["loss"], r["generator_loss"], r["valid"]["mrr"]) for r in second_history]
