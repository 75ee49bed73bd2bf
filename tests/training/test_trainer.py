import json
import math

import pytest
import torch

from utils import random_kg
from mmkgc_pyg.nn import MMKGCModel, self_adversarial_sigmoid_loss
from mmkgc_pyg.errors import TrainingDiverged
from mmkgc_pyg.training import TrainConfig, Trainer


def make_trainer(tmp_path=None, **overrides):
    torch.manual_seed(0)
    data = random_kg()
    values = dict(dim=4, margin=6.0, negatives=5, batch_size=32, lr=1e-2, lr_g=1e-2,
                  mu=0.5, epochs=4, eval_every=2, patience=3)
    values.update(overrides)
    config = TrainConfig(**values)
    model = MMKGCModel(data.num_entities, data.num_relations, config.dim,
                       features=data.features, masks=data.masks, margin=config.margin)
    return Trainer(model, data, config, out_dir=tmp_path, progress=False)


def snapshot(params):
    return [p.detach().clone() for p in params]


def changed(before, params):
    return [not torch.equal(b, p) for b, p in zip(before, params)]


@pytest.mark.parametrize("mat_loss", ["reference", "per-positive"])
def test_step_runs_the_objective_with_sampled_negatives(mat_loss):
    trainer = make_trainer(mu=0.7, mat_loss=mat_loss)
    batch = trainer.dataset.train[:16]
    state = trainer.rng.get_state()
    candidates, corrupt_head = trainer.sampler(batch, generator=trainer.rng)
    expected = trainer.model_loss(batch, candidates, corrupt_head, trainer.mat, trainer.rng)
    trainer.rng.set_state(state)
    loss, generator_loss = trainer.step(batch)
    torch.testing.assert_close(loss, expected.detach())
    assert generator_loss > 0


def test_each_update_changes_only_its_own_parameters():
    trainer = make_trainer()
    batch = trainer.dataset.train[:16]
    model_params = list(trainer.model.parameters())
    generator_params = list(trainer.mat.parameters())
    before_model, before_gen = snapshot(model_params), snapshot(generator_params)
    trainer.generator_optimizer.step = lambda: None  # isolate the model update
    trainer.step(batch)
    assert any(changed(before_model, model_params))
    assert not any(changed(before_gen, generator_params))

    trainer = make_trainer()
    model_params = list(trainer.model.parameters())
    generator_params = list(trainer.mat.parameters())
    before_model, before_gen = snapshot(model_params), snapshot(generator_params)
    trainer._update([trainer.generator_optimizer], trainer.generator_loss, batch, trainer.model,
                    trainer.rng)
    assert not any(changed(before_model, model_params))
    assert all(changed(before_gen, generator_params))


def test_mu_zero_and_no_mat():
    trainer = make_trainer(mu=0.0)
    assert trainer.mat is not None and not trainer.trains_generators
    batch = trainer.dataset.train[:16]
    state = trainer.rng.get_state()
    candidates, corrupt_head = trainer.sampler(batch, generator=trainer.rng)
    head, rel, tail = batch.unbind(1)
    scores = trainer.model.candidate_scores(head, rel, tail, candidates, corrupt_head)
    expected = self_adversarial_sigmoid_loss(scores[:, 0], scores[:, 1:], 2.0)
    trainer.rng.set_state(state)
    loss, generator_loss = trainer.step(batch)
    torch.testing.assert_close(loss, expected.detach())
    assert generator_loss is None
    trainer = make_trainer(mat=False)
    assert trainer.generator_optimizer is None and trainer.mat is None
    _, generator_loss = trainer.step(batch)
    assert generator_loss is None


def test_mu_zero_skips_the_generators_without_changing_the_model():
    """At mu = 0 the generator update cannot reach the model: skipping it (but drawing its
    noise) leaves the model bit-for-bit where training the generators leaves it."""
    skipping, training = make_trainer(mu=0.0), make_trainer(mu=0.0)
    generators_before = snapshot(skipping.mat.parameters())
    for start in range(0, 96, 32):
        batch = skipping.dataset.train[start:start + 32]
        skipping.step(batch)
        candidates, corrupt_head = training.sampler(batch, generator=training.rng)
        training._update([training.model_optimizer], training.model_loss, batch, candidates,
                         corrupt_head, training.mat, training.rng)
        training._update([training.generator_optimizer], training.generator_loss, batch,
                         training.model, training.rng)
    for a, b in zip(skipping.model.parameters(), training.model.parameters()):
        assert torch.equal(a, b)
    assert not any(changed(generators_before, skipping.mat.parameters()))
    assert all(changed(generators_before, training.mat.parameters()))


def test_fit_learns_keeps_best_and_stops_early(tmp_path):
    trainer = make_trainer(tmp_path, epochs=12, eval_every=1, patience=2, lr=0.05)
    records = []
    trainer.fit(on_epoch=records.append)
    losses = [r["loss"] for r in records]
    assert losses[-1] < losses[0]
    valid = [r["valid"]["mrr"] for r in records]
    assert trainer.best_mrr == max(valid)
    if len(records) < 12:  # stopped early: the last `patience` evaluations did not improve
        assert max(valid[-2:]) <= trainer.best_mrr and trainer.best_epoch <= len(records) - 2
    assert (tmp_path / "model.pt").exists()
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert len(lines) == len(records)
    # The best weights are loaded at the end.
    mrr = trainer.evaluate("valid")["mrr"]
    assert mrr == pytest.approx(trainer.best_mrr)


def test_non_finite_loss_stops_with_epoch_and_step(tmp_path):
    trainer = make_trainer(tmp_path)
    with torch.no_grad():
        trainer.model.node_emb.weight[:] = math.nan
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 1 of 4"):
        trainer.fit()
    assert not (tmp_path / "model.pt").exists()  # nothing was saved from the bad epoch
    assert not (tmp_path / "history.jsonl").exists()


def test_bf16_autocast_step_trains():
    trainer = make_trainer(bf16=True)
    before = trainer.model.node_emb.weight.detach().clone()
    loss, generator_loss = trainer.step(trainer.dataset.train[:32])
    assert torch.isfinite(loss) and torch.isfinite(generator_loss)
    assert trainer.model.node_emb.weight.dtype == torch.float32
    assert not torch.equal(before, trainer.model.node_emb.weight)


def test_time_budget_stops_after_the_epoch_that_crosses_it(tmp_path):
    trainer = make_trainer(tmp_path, epochs=50, eval_every=10, time_budget=1e-9)
    records = []
    trainer.fit(on_epoch=records.append)
    assert [r["epoch"] for r in records] == [1]
    assert "valid" in records[0]  # the last epoch is evaluated
    assert trainer.best_epoch == 1 and (tmp_path / "model.pt").exists()


def test_history_and_tensorboard_logs(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is an optional extra")
    trainer = make_trainer(tmp_path, epochs=2, eval_every=1, trackers=("tensorboard",))
    trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"loss", "generator_loss", "seconds", "steps_per_s", "valid"} <= set(records[0])
    event_files = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert event_files and event_files[0].stat().st_size > 0
