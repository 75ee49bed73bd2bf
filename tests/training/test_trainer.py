import math

import pytest
import torch

from utils import random_kg
from mmkgc_pyg.nn import MMKGCModel, self_adversarial_sigmoid_loss
from mmkgc_pyg.errors import TrainingDiverged
from mmkgc_pyg.training import TrainConfig, Trainer, build_model
from mmkgc_pyg.training.objective import GeneratorLoss, embed_batch


def make_trainer(**overrides):
    torch.manual_seed(0)
    data = random_kg()
    values = dict(dim=4, margin=6.0, negatives=5, batch_size=32, lr=1e-2, lr_g=1e-2,
                  mu=0.5, epochs=4, eval_every=2, patience=3)
    values.update(overrides)
    config = TrainConfig(**values)
    return Trainer(build_model(data, config), data, config, progress=False)


def snapshot(params):
    return [p.detach().clone() for p in params]


def changed(before, params):
    return [not torch.equal(b, p) for b, p in zip(before, params)]


@pytest.mark.parametrize("mat_loss", ["reference", "per-positive"])
def test_step_runs_the_objective_with_sampled_negatives(mat_loss):
    trainer = make_trainer(mu=0.7, mat_loss=mat_loss)
    step, batch = trainer.step, trainer.dataset.train[:16]
    state = step.rng.get_state()
    candidates, corrupt_head = step.sampler(batch, generator=step.rng)
    head, rel, tail = batch.unbind(1)
    expected = step.model_loss(embed_batch(trainer.model, head, tail, candidates), rel,
                               corrupt_head, step.mat, step.rng)
    step.rng.set_state(state)
    loss, generator_loss = trainer.step(batch)
    torch.testing.assert_close(loss, expected.detach())
    assert generator_loss > 0


@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_a_step_updates_the_model_and_the_generators_only_when_they_count(mu):
    trainer = make_trainer(mu=mu)
    model_params, generator_params = (list(trainer.model.parameters()),
                                      list(trainer.step.mat.parameters()))
    before_model, before_gen = snapshot(model_params), snapshot(generator_params)
    trainer.step(trainer.dataset.train[:16])
    assert all(changed(before_model, model_params))
    assert all(changed(before_gen, generator_params)) == (mu > 0)
    assert not any(changed(before_gen, generator_params)) == (mu == 0)


def test_mu_zero_and_no_mat():
    trainer = make_trainer(mu=0.0)
    assert trainer.step.mat is not None and not trainer.step.trains_generators
    batch = trainer.dataset.train[:16]
    step = trainer.step
    state = step.rng.get_state()
    candidates, corrupt_head = step.sampler(batch, generator=step.rng)
    head, rel, tail = batch.unbind(1)
    scores = trainer.model.candidate_scores(head, rel, tail, candidates, corrupt_head)
    expected = self_adversarial_sigmoid_loss(scores[:, 0], scores[:, 1:], 2.0)
    step.rng.set_state(state)
    loss, generator_loss = trainer.step(batch)
    torch.testing.assert_close(loss, expected.detach())
    assert generator_loss is None
    trainer = make_trainer(mat=False)
    assert trainer.step.generator_optimizer is None and trainer.step.mat is None
    _, generator_loss = trainer.step(batch)
    assert generator_loss is None


def test_mu_zero_skips_the_generators_without_changing_the_model():
    """At mu = 0 the generator update cannot reach the model: skipping it (but drawing its
    noise) leaves the model bit-for-bit where training the generators leaves it."""
    skipping, training = make_trainer(mu=0.0), make_trainer(mu=0.0)
    generators_before = snapshot(skipping.step.mat.parameters())
    step = training.step
    for start in range(0, 96, 32):
        batch = skipping.dataset.train[start:start + 32]
        skipping.step(batch)
        # The same step by hand, with the generator update that mu = 0 skips.
        candidates, corrupt_head = step.sampler(batch, generator=step.rng)
        head, rel, tail = batch.unbind(1)
        step.model_optimizer.zero_grad()
        step.model_loss(embed_batch(training.model, head, tail, candidates), rel,
                        corrupt_head, step.mat, step.rng).backward()
        step.model_optimizer.step()
        step.generator_optimizer.zero_grad()
        GeneratorLoss(step.mat, 2.0)(batch, training.model, step.rng).backward()
        step.generator_optimizer.step()
    for a, b in zip(skipping.model.parameters(), training.model.parameters()):
        assert torch.equal(a, b)
    assert not any(changed(generators_before, skipping.step.mat.parameters()))
    assert all(changed(generators_before, step.mat.parameters()))


def test_a_model_that_does_not_fit_the_config_is_refused():
    """The README's old Python path trained RotatE with margin 12 and both modalities
    while the config asked for TransE, margin 6, structure only: now refused, naming
    each difference."""
    data = random_kg()
    config = TrainConfig(interaction="transe", margin=6.0, modalities=False, dim=4)
    model = MMKGCModel.from_data(data.to_data(), 4)
    with pytest.raises(ValueError, match="config.interaction='transe' but the model has "
                                         "'rotate'.*margin.*modalities=False"):
        Trainer(model, data, config)
    with pytest.raises(ValueError, match="sparse=True"):
        Trainer(MMKGCModel(30, 4, 4, 6.0, True), data, TrainConfig(dim=4, margin=6.0))
    Trainer(build_model(data, config), data, config, progress=False)  # built for it: fits


def test_fit_learns_keeps_best_and_stops_early():
    trainer = make_trainer(epochs=12, eval_every=1, patience=2, lr=0.05)
    records, seen = [], []
    trainer.fit([records.append, lambda r: seen.append(trainer.stopper.improved_at(
        r["epoch"]))])
    losses = [r["loss"] for r in records]
    assert losses[-1] < losses[0]
    valid = [r["valid"]["mrr"] for r in records]
    assert trainer.best_mrr == max(valid)
    if len(records) < 12:  # stopped early: the last `patience` evaluations did not improve
        assert max(valid[-2:]) <= trainer.best_mrr and trainer.best_epoch <= len(records) - 2
    # Callbacks run after validation, in order, each epoch.
    assert seen == [v > max(valid[:i], default=-1.0) for i, v in enumerate(valid)]
    # The best weights are loaded at the end.
    mrr = trainer.evaluate("valid")["mrr"]
    assert mrr == pytest.approx(trainer.best_mrr)


def test_non_finite_loss_stops_with_epoch_and_step():
    trainer = make_trainer()
    with torch.no_grad():
        trainer.model.node_emb.weight[:] = math.nan
    records = []
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 1 of 4"):
        trainer.fit([records.append])
    assert records == []  # no callback saw the bad epoch


def test_bf16_autocast_step_trains():
    trainer = make_trainer(bf16=True)
    before = trainer.model.node_emb.weight.detach().clone()
    loss, generator_loss = trainer.step(trainer.dataset.train[:32])
    assert torch.isfinite(loss) and torch.isfinite(generator_loss)
    assert trainer.model.node_emb.weight.dtype == torch.float32
    assert not torch.equal(before, trainer.model.node_emb.weight)


def test_time_budget_stops_after_the_epoch_that_crosses_it():
    trainer = make_trainer(epochs=50, eval_every=10, time_budget=1e-9)
    records = []
    trainer.fit([records.append])
    assert [r["epoch"] for r in records] == [1]
    assert "valid" in records[0]  # the last epoch is evaluated
    assert trainer.best_epoch == 1


@pytest.mark.parametrize("modalities", [True, False])
def test_sparse_steps_update_only_touched_rows(modalities):
    """The sparse step (structure only too: it used to have no dense parameters left and
    crashed) changes exactly the rows of the entities a batch names."""
    trainer = make_trainer(sparse=True, modalities=modalities, mu=0.5 if modalities else 0.0)
    batch = trainer.dataset.train[:4]
    tables = {"node_emb": trainer.model.node_emb.weight,
              **{f"features.{m}": x for m, x in getattr(trainer.model, "features", {}).items()}}
    before = {name: t.detach().clone() for name, t in tables.items()}
    state = trainer.step.rng.get_state()
    candidates, _ = trainer.step.sampler(batch, generator=trainer.step.rng)
    trainer.step.rng.set_state(state)
    trainer.step(batch)
    named = torch.zeros(trainer.model.num_nodes, dtype=torch.bool)
    named[torch.cat([batch[:, 0], batch[:, 2], candidates.reshape(-1)])] = True
    for name, table in tables.items():
        moved = (table != before[name]).any(1)
        assert bool((moved <= named).all()), name  # nothing else moved
        assert bool(moved.any()), name
    assert trainer.step.table_optimizer is not None


def test_float16_feature_tables_learn_with_sparse_updates_and_are_refused_dense():
    """float16 tables keep float32 Adam moments in the sparse step and learn; a dense
    Adam would keep float16 moments, which underflow (NaN at the first step): refused."""
    with pytest.raises(ValueError, match="feature_dtype='float16'"):
        make_trainer(feature_dtype="float16", sparse=False)
    trainer = make_trainer(feature_dtype="float16", sparse=True, epochs=6, lr=0.05,
                           eval_every=6)
    assert all(x.dtype == torch.float16 for x in trainer.model.features.values())
    records = []
    trainer.fit([records.append])
    losses = [r["loss"] for r in records]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    assert trainer.best_mrr > 0
