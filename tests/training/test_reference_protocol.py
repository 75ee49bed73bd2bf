"""The reference protocol: one training step equals the paper's equations written out by
hand in float64 (per-negative sides, MAT's term, fused zero rows, one Adam step of the
model and of the generators), and each switch does what it says."""
import json
import math

import pytest
import torch

from utils import random_kg
from mmkgc_pyg import pipeline
from mmkgc_pyg.errors import ConfigError, InvalidArgumentError, TrainingInterrupted
from mmkgc_pyg.evaluation import FilterIndex, evaluate_link_prediction
from mmkgc_pyg.training import TrainConfig, Trainer, build_model, preset_for, run_state
from mmkgc_pyg.training.config import PAPER_PRESETS, PROTOCOLS, REFERENCE_PRESETS
from mmkgc_pyg.training.sampler import NegativeSampler
from mmkgc_pyg.training.step import TrainingStep

ALPHA, GAMMA, EPSILON = 2.0, 6.0, 2.0


# ---------------------------------------------------------------- the paper, by hand
def joint_embedding(struct, projected, attn):
    """AdaMF: u = w . tanh(p) per modality, a = softmax(u), j = sum a p (all present)."""
    stack = torch.stack([struct, *projected], dim=1)
    weights = torch.softmax(torch.tanh(stack) @ attn, dim=1)
    return (weights[..., None] * stack).sum(1)


def rotate_score(head, phase, tail):
    """gamma - sum_i |h_i e^{i theta_i} - t_i|, as the reference scores every triple."""
    k = phase.size(-1)
    theta = phase * (math.pi / ((GAMMA + EPSILON) / k))
    re_h, im_h = head[..., :k], head[..., k:]
    re_t, im_t = tail[..., :k], tail[..., k:]
    re = re_h * torch.cos(theta) - im_h * torch.sin(theta) - re_t
    im = re_h * torch.sin(theta) + im_h * torch.cos(theta) - im_t
    return GAMMA - torch.sqrt(re ** 2 + im ** 2).sum(-1)


def sigmoid_loss(positive, negative):
    """-1/2 [mean log s(f+) + mean_rows sum_k softmax_k(alpha f-) log s(-f-)]."""
    weights = torch.softmax(ALPHA * negative.detach(), dim=-1)
    return -0.5 * (torch.log(torch.sigmoid(positive)).mean()
                   + (weights * torch.log(torch.sigmoid(-negative))).sum(-1).mean())


def generate(gen, noise, struct):
    hidden = torch.cat([noise, struct], -1) @ gen["lin1.weight"].T + gen["lin1.bias"]
    hidden = torch.where(hidden > 0, hidden, 0.01 * hidden)
    return hidden @ gen["lin2.weight"].T + gen["lin2.bias"]


def model_loss(p, gens, modalities, batch, candidates, sides, noise, mu):
    head, rel, tail = batch.unbind(1)
    # Fused zero rows: every entity's every row is projected (a zero row to the bias).
    projected = [p[f"features.{m}"] @ p[f"adamf.projections.{m}.weight"].T
                 + p[f"adamf.projections.{m}.bias"] for m in modalities]
    joint = joint_embedding(p["node_emb.weight"], projected, p["adamf.attn"])
    phase = p["rel_emb.weight"][rel]
    # Each candidate replaces its own side: (c, r, t) for a head coin, (h, r, c) else.
    scores = torch.where(sides, rotate_score(joint[candidates], phase[:, None], joint[tail, None]),
                         rotate_score(joint[head, None], phase[:, None], joint[candidates]))
    positive = rotate_score(joint[head], phase, joint[tail])
    loss = sigmoid_loss(positive, scores[:, 1:])
    fake = [joint_embedding(p["node_emb.weight"][e], [generate(gens[m], z, p["node_emb.weight"][e])
                                                      for m, z in zip(modalities, zs)],
                            p["adamf.attn"])
            for e, zs in ((head, noise[0]), (tail, noise[1]))]
    fakes = [rotate_score(fake[0], phase, joint[tail]), rotate_score(joint[head], phase, fake[1]),
             rotate_score(fake[0], phase, fake[1])]
    # The reference's MAT term: the batch's fakes of one kind share one softmax.
    mat = sum(sigmoid_loss(positive, f[None]) for f in fakes)
    return loss + mu * mat, positive


def adam_first_step(value, grad, lr):
    """Adam's first step (beta1 0.9, beta2 0.999, eps 1e-8) after bias correction."""
    return value - lr * grad / (grad.abs() + 1e-8)


# ---------------------------------------------------------------- the library's step
@pytest.fixture
def reference_step():
    data = random_kg(num_entities=30, num_train=120)
    config = TrainConfig(protocol="reference", dim=3, margin=GAMMA, negatives=6, batch_size=8,
                         lr=0.01, lr_g=0.02, mu=0.5, seed=3)
    torch.manual_seed(0)
    model = build_model(data, config)
    sampler = NegativeSampler(data.train, 30, 4, 6, per_negative=True)
    return data, config, model, TrainingStep(model, sampler, config)


def test_one_step_is_the_papers_equations_in_float64(reference_step):
    data, config, model, step = reference_step
    batch = data.train[:8]
    modalities = model.modalities
    before = {n: p.detach().double().clone() for n, p in model.named_parameters()}
    gens = {m: {n: p.detach().double().clone() for n, p in g.named_parameters()}
            for m, g in step.mat.generators.items()}
    rng = torch.Generator().manual_seed(0)
    rng.set_state(step.rng.get_state())

    loss, generator_loss = step(batch)

    # The same draws, in the step's order: negatives and sides, the model step's noise
    # (heads' fakes, then tails'), the generator step's.
    candidates, sides = step.sampler(batch, rng)
    assert (sides[:, 1:].any(1) & ~sides[:, 1:].all(1)).any()  # rows mixing both sides
    named = torch.cat([batch[:, 0], batch[:, 2], candidates.reshape(-1)])
    missing = torch.stack([~data.masks[m] for m in modalities], 1)
    assert missing[named].any() and bool(model.fusion_mask.all())  # zero rows, all fused
    noise = [[[torch.randn(8, 64, generator=rng).double() for _ in modalities]
              for _ in "ht"] for _ in ("model", "generators")]

    params = {n: v.clone().requires_grad_() for n, v in before.items()}
    expected, _ = model_loss(params, gens, modalities, batch, candidates, sides, noise[0],
                             config.mu)
    grads = dict(zip(params, torch.autograd.grad(expected, list(params.values()))))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad.double(), grads[name], rtol=1e-4, atol=1e-6,
                                   msg=name)
        # Where float32 and float64 gradients differ in sign or are ~0, Adam's first step
        # (lr * g / |g|) can differ: compare the steps where the gradient is clear.
        clear = grads[name].abs() > 1e-4
        updated = adam_first_step(before[name], grads[name], config.lr)
        torch.testing.assert_close(p.detach().double()[clear], updated[clear], rtol=0,
                                   atol=1e-6, msg=name)

    # The generators' step: their fakes should score like the positives of the model
    # just updated.
    after = {n: p.detach().double() for n, p in model.named_parameters()}
    gen_params = {m: {n: v.clone().requires_grad_() for n, v in g.items()}
                  for m, g in gens.items()}
    head, rel, tail = batch.unbind(1)
    projected = [after[f"features.{m}"] @ after[f"adamf.projections.{m}.weight"].T
                 + after[f"adamf.projections.{m}.bias"] for m in modalities]
    joint = joint_embedding(after["node_emb.weight"], projected, after["adamf.attn"])
    phase = after["rel_emb.weight"][rel]
    positive = rotate_score(joint[head], phase, joint[tail])
    fake = [joint_embedding(after["node_emb.weight"][e],
                            [generate(gen_params[m], z, after["node_emb.weight"][e])
                             for m, z in zip(modalities, zs)], after["adamf.attn"])
            for e, zs in ((head, noise[1][0]), (tail, noise[1][1]))]
    fakes = [rotate_score(fake[0], phase, joint[tail]), rotate_score(joint[head], phase, fake[1]),
             rotate_score(fake[0], phase, fake[1])]
    expected_g = sum(sigmoid_loss(f, positive[:, None]) for f in fakes)
    assert generator_loss.item() == pytest.approx(expected_g.item(), rel=1e-5)
    flat = [(m, n, v) for m, g in gen_params.items() for n, v in g.items()]
    for (m, n, v), grad in zip(flat, torch.autograd.grad(expected_g, [v for *_, v in flat])):
        got = dict(step.mat.generators[m].named_parameters())[n]
        torch.testing.assert_close(got.grad.double(), grad, rtol=1e-4, atol=1e-6,
                                   msg=f"{m}.{n}")


# ---------------------------------------------------------------- the switches
def test_protocol_sets_the_switches_and_explicit_values_win():
    assert {k: getattr(TrainConfig(), k) for k in PROTOCOLS["ours"]} == PROTOCOLS["ours"]
    reference = TrainConfig(protocol="reference")
    assert {k: getattr(reference, k) for k in PROTOCOLS["reference"]} == PROTOCOLS["reference"]
    mixed = TrainConfig(protocol="reference", negative_sides="per-positive")
    assert (mixed.negative_sides, mixed.positives) == ("per-positive", "with-replacement")
    assert TrainConfig.from_dict(mixed.to_dict()) == mixed
    with pytest.raises(ConfigError, match="^protocol="):
        TrainConfig(protocol="paper")
    with pytest.raises(ConfigError, match="^positives="):
        TrainConfig(positives="bootstrap")


def test_reference_presets_are_the_released_scripts():
    assert preset_for("DB15K") == PAPER_PRESETS["DB15K"]
    db15k = preset_for("db15k", "reference")
    assert (db15k["lr"], db15k["dim"], db15k["negatives"], db15k["mu"]) == (2e-5, 250, 128, 0.0)
    assert preset_for("MKG-Y", "reference")["margin"] == 4.0
    assert preset_for("FB15k", "reference") == {}
    for values in REFERENCE_PRESETS.values():
        TrainConfig(protocol="reference", **values)


def test_with_replacement_draws_floor_n_over_batch_batches():
    data = random_kg(num_entities=30, num_train=100)
    config = TrainConfig(dim=2, margin=GAMMA, negatives=3, batch_size=32, epochs=1,
                         positives="with-replacement", mat=False)
    trainer = Trainer(build_model(data, config), data, config, progress=False)

    class Recorder:  # the step, recording its positives
        trains_generators = False

        def __call__(self, batch):
            seen.append(batch)
            return torch.zeros(()), None

    seen = []
    trainer.step = Recorder()
    trainer.train_epoch()
    assert [len(b) for b in seen] == [32, 32, 32]  # floor(100 / 32), all full
    drawn = torch.cat(seen)
    known = {tuple(t) for t in data.train.tolist()}
    assert all(tuple(t) in known for t in drawn.tolist())
    assert len({tuple(t) for t in drawn.tolist()}) < 96  # repeats: with replacement


def test_an_interrupted_reference_run_resumes_exactly():
    """Positives drawn with replacement and per-negative sides continue mid-epoch as if
    never interrupted."""
    data = random_kg(num_entities=30, num_train=120)
    config = TrainConfig(protocol="reference", dim=2, margin=GAMMA, negatives=3,
                         batch_size=32, lr=1e-2, lr_g=1e-2, mu=0.5, epochs=2, eval_every=1)

    def trainer():
        torch.manual_seed(0)
        return Trainer(build_model(data, config), data, config, progress=False)

    whole = trainer()
    whole.fit()
    killed = trainer()
    eager, steps = killed.step._eager, []

    def counting(batch):  # asks to stop after the 4th step: epoch 2, after its step 1
        steps.append(1)
        if len(steps) == 4:
            killed.request_stop(2)
        return eager(batch)

    killed.step._eager = counting
    with pytest.raises(TrainingInterrupted):
        killed.fit()
    assert run_state.position(killed) == "in epoch 2 after step 1"
    resumed = trainer()
    run_state.load_state_dict(resumed, run_state.state_dict(killed))
    resumed.fit()
    for name, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name


def test_fused_rows_keep_every_entity_in_the_fusion():
    data = random_kg()
    masked = build_model(data, TrainConfig(dim=2, margin=GAMMA))
    fused = build_model(data, TrainConfig(dim=2, margin=GAMMA, missing_rows="fused"))
    assert not bool(masked.fusion_mask.all()) and bool(fused.fusion_mask.all())
    fused.load_state_dict({**masked.state_dict(), "fusion_mask": fused.fusion_mask})
    _, w_masked = masked.entity_embeddings(return_attention_weights=True)
    _, w_fused = fused.entity_embeddings(return_attention_weights=True)
    missing = ~masked.fusion_mask
    assert (w_masked[missing] == 0).all() and (w_fused[missing] > 0).all()
    with pytest.raises(InvalidArgumentError, match="missing_rows"):
        Trainer(masked, data, TrainConfig(dim=2, margin=GAMMA, missing_rows="fused"))


def test_a_reference_run_reports_the_references_count_beside_ours(tmp_path):
    data = random_kg(num_entities=30, num_train=120)
    data.test = torch.cat([data.test, data.test[:4]])  # repeated lines count again
    result = pipeline(data, TrainConfig(protocol="reference", dim=2, margin=GAMMA,
                                        negatives=3, batch_size=32, epochs=3, eval_every=1,
                                        patience=1),
                      tmp_path / "run", progress=False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    reference = metrics["reference"]
    assert (reference["rank_type"], reference["raw_splits"]) == ("optimistic", True)
    assert reference["test_triples_used"] == 19 and metrics["test_triples_used"] == 15
    # The same figures as a ranking of every line of the file, optimistic.
    lines = evaluate_link_prediction(result.model, data.test, FilterIndex(
        data.known_triples(), data.num_relations))
    for key in ("mrr", "hits@1", "hits@10"):
        assert reference[key] == pytest.approx(lines["optimistic"][key])
    # The last epoch's weights, though validation never stopped training (patience 1).
    assert metrics["model_epoch"] == 3 and len(result.history) == 3
    assert "test, as the reference" in (tmp_path / "run" / "metrics.md").read_text()
