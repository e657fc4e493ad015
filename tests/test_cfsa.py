"""CFSA: every network's shapes and gradients, hand-computed losses, determinism, ablation switches, no leakage."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.contract import NotFittedError, TrainingDiverged, ZSBenchError
from benchmark.core.data import Split
from benchmark.core.protocol import ZSDataset, build_train_view
from benchmark.registry import build_method
from benchmark.torch_utils import reverse_gradient
from cfsa.losses import (
    alignment_loss,
    cmpm_loss,
    coral_loss,
    critic_loss,
    cycle_loss,
    gradient_penalty,
    mmd_loss,
)
from cfsa.method import CFSA
from cfsa.networks import ConditionalCritic, ConditionalGenerator, ModalityClassifier, Regressor
from cfsa.training import LossMeter
from tests.conftest import make_tiny_dataset

TINY = {"hidden": 16, "epochs": 2, "epoch_steps": 3, "batch_size": 8, "n_critic": 2}


def tiny_dataset(seed: int = 0, n_classes: int = 6, n_unseen: int = 2, per_class: int = 10) -> ZSDataset:
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n_classes, 6)).astype(np.float32)
    names = tuple(f"c{i}" for i in range(n_classes))
    labels = np.repeat(np.arange(n_classes), per_class)
    features = {m: (emb[labels] @ rng.standard_normal((6, d)) + 0.1 * rng.standard_normal((labels.size, d)))
                .astype(np.float32) for m, d in (("sketch", 20), ("image", 12))}
    split = Split(dataset="tiny", name="tiny", seen=names[n_unseen:], unseen=names[:n_unseen],
                  holdout_fraction=0.2, holdout_seed=0, sha256="0" * 64, path="<memory>")
    return ZSDataset(name="tiny", source="synthetic", modalities=("sketch", "image"), features=features,
                     labels={m: labels.copy() for m in features}, class_names=names, class_embeddings=emb,
                     split=split, tasks=(("sketch", "image"),), eval_protocol="all", paired=False, parts=None,
                     provenance={"semantics": "random", "features": "tiny"})


def fitted(name: str = "cfsa", ds: ZSDataset | None = None, seed: int = 0, **params) -> CFSA:
    ds = ds or tiny_dataset()
    return build_method(name, {**TINY, **params})[1].fit(build_train_view(ds), seed)


# -- networks ---------------------------------------------------------------------------------------------------
def _all_grads_finite_and_nonzero(module: torch.nn.Module) -> bool:
    grads = [p.grad for p in module.parameters()]
    return all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_every_network_has_the_right_shapes_and_gradients():
    torch.manual_seed(0)
    c, z, x = torch.randn(5, 6), torch.randn(5, 6), torch.randn(5, 20)
    G, D, R = ConditionalGenerator(6, 6, 20, 16), ConditionalCritic(20, 6, 16), Regressor(20, 6, 16)
    A = ModalityClassifier(6, 2, 8)
    out = {"G": G(c, z), "D": D(x, c), "R": R(x), "A": A(torch.randn(5, 6))}
    assert out["G"].shape == (5, 20) and out["D"].shape == (5,)
    assert out["R"].shape == (5, 6) and out["A"].shape == (5, 2)
    for key, net in (("G", G), ("D", D), ("R", R), ("A", A)):
        out[key].pow(2).sum().backward()
        assert _all_grads_finite_and_nonzero(net), key


def test_gradient_reversal_is_identity_forward_and_negated_backward():
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = reverse_gradient(x, 0.5)
    assert torch.equal(y, x.detach())
    (y * torch.tensor([3.0, 4.0])).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([-1.5, -2.0]))


# -- losses against hand-computed values --------------------------------------------------------------------------
def test_wasserstein_critic_loss_by_hand():
    assert critic_loss(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 2.0])).item() == pytest.approx(-1.0)


def test_gradient_penalty_of_a_linear_critic_by_hand():
    # D(x, c) = w.x + v.c has gradient w everywhere: penalty (||w|| - 1)^2 = (5 - 1)^2 = 16, whatever the mix.
    w, v = torch.tensor([3.0, 4.0]), torch.tensor([7.0])

    def critic(x, c):
        return x @ w + c @ v

    real, fake, cond = torch.randn(4, 2), torch.randn(4, 2), torch.randn(4, 1)
    assert gradient_penalty(critic, real, fake, cond).item() == pytest.approx(16.0)


def test_gradient_penalty_uses_the_mixed_point():
    # D(x) = 0.5 ||x||^2 has gradient x; at the mix 0.5 of (2, 0) and (0, 0) the point is (1, 0): penalty 0.
    # At mix 1 the point is (2, 0): penalty (2 - 1)^2 = 1.
    def critic(x, c):
        return 0.5 * x.pow(2).sum(1)

    real, fake, cond = torch.tensor([[2.0, 0.0]]), torch.zeros(1, 2), torch.zeros(1, 1)
    assert gradient_penalty(critic, real, fake, cond, mix=torch.tensor([[0.5]])).item() == pytest.approx(0.0)
    assert gradient_penalty(critic, real, fake, cond, mix=torch.tensor([[1.0]])).item() == pytest.approx(1.0)


def test_the_split_critic_is_one_linear_layer_on_features_and_condition():
    """Held as two blocks, the first layer starts from a single layer's draw and computes what it did."""
    torch.manual_seed(3)
    critic = ConditionalCritic(7, 3, 5)
    torch.manual_seed(3)
    first, out = nn.Linear(10, 5), nn.Linear(5, 1)
    assert torch.equal(torch.cat([critic.feature_weight, critic.condition_weight], dim=1), first.weight)
    assert torch.equal(critic.bias, first.bias) and torch.equal(critic.out.weight, out.weight)
    x, c = torch.randn(4, 7), torch.randn(4, 3)
    expected = out(F.leaky_relu(first(torch.cat([x, c], dim=1)), 0.2)).squeeze(1)
    torch.testing.assert_close(critic(x, c), expected)


def test_closed_form_critic_gradient_matches_autograd():
    torch.manual_seed(1)
    critic = ConditionalCritic(7, 3, 5)
    real, fake, cond, mix = torch.randn(6, 7), torch.randn(6, 7), torch.randn(6, 3), torch.rand(6, 1)
    closed = gradient_penalty(critic, real, fake, cond, mix=mix)
    closed.backward()
    # Parameters the closed form leaves out (the biases) get an all-zero gradient from autograd.
    def grads():
        return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in critic.parameters()]

    closed_grads = grads()
    critic.zero_grad(set_to_none=True)
    generic = gradient_penalty(lambda x, c: critic(x, c), real, fake, cond, mix=mix)
    generic.backward()
    assert closed.item() == pytest.approx(generic.item(), rel=1e-5)
    for a, b in zip(closed_grads, grads(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_the_critic_update_route_gives_the_plain_losses_and_gradients():
    """scores_and_penalty (one node for both paths to the feature block) against forward + gradient_penalty."""
    torch.manual_seed(2)
    critic = ConditionalCritic(9, 4, 6)
    real, fake, cond, mix = torch.randn(5, 9), torch.randn(5, 9), torch.randn(5, 4), torch.rand(5, 1)

    def run(fast: bool):
        critic.zero_grad(set_to_none=True)
        if fast:
            real_scores, fake_scores, penalty = critic.scores_and_penalty(real, fake, cond, mix)
        else:
            real_scores, fake_scores = critic(real, cond), critic(fake, cond)
            penalty = gradient_penalty(critic, real, fake, cond, mix=mix)
        (critic_loss(real_scores, fake_scores) + 10.0 * penalty).backward()
        return [real_scores.detach(), fake_scores.detach(), penalty.detach()], \
            {n: p.grad.clone() for n, p in critic.named_parameters()}

    fast_values, fast_grads = run(True)
    plain_values, plain_grads = run(False)
    for a, b in zip(fast_values, plain_values, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert fast_grads.keys() == plain_grads.keys()
    for name in plain_grads:
        torch.testing.assert_close(fast_grads[name], plain_grads[name], rtol=1e-4, atol=1e-6, msg=name)

def test_cycle_loss_by_hand():
    # Squared distance averaged over rows and dimensions (JFSE's reduce_mean): (1 + 4 + 0 + 4) / 4; summed over
    # dimensions and averaged over rows: (1 + 4 + 0 + 4) / 2.
    x = torch.tensor([[1.0, 2.0], [0.0, 2.0]])
    assert cycle_loss(x, torch.zeros(2, 2)).item() == pytest.approx(2.25)
    assert cycle_loss(x, torch.zeros(2, 2), "sum").item() == pytest.approx(4.5)


def test_cmpm_by_hand_with_its_temperature():
    # a = b = I: cos(a_i, b_j) is 1 on the diagonal and 0 off it; with tau = 0.5 the logits are 2 and 0.
    a, b = torch.eye(2), torch.eye(2)
    labels = torch.tensor([0, 1])
    eps = 1e-8
    for tau in (0.5, 1.0):
        p_match, p_other = math.exp(1 / tau) / (math.exp(1 / tau) + 1), 1 / (math.exp(1 / tau) + 1)
        one_direction = (p_match * (math.log(p_match) - math.log(1 + eps))
                         + p_other * (math.log(p_other) - math.log(eps)))
        assert cmpm_loss(a, b, labels, labels, temperature=tau).item() == pytest.approx(2 * one_direction, rel=1e-5)
    # Cosines, not projections: scaling an embedding changes nothing.
    assert cmpm_loss(3 * a, b, labels, labels, 0.5).item() == pytest.approx(cmpm_loss(a, b, labels, labels, 0.5).item())
    # A lower temperature sharpens the softmax towards the matching item: the divergence falls.
    assert cmpm_loss(a, b, labels, labels, 0.1).item() < cmpm_loss(a, b, labels, labels, 1.0).item()
    # Same class everywhere: q is uniform and p is uniform too (equal logits) -> zero divergence.
    same = torch.tensor([0, 0])
    ones = torch.ones(2, 2)
    assert cmpm_loss(ones, ones, same, same).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        cmpm_loss(a, b, labels, labels, temperature=0.0)


def test_mmd_by_hand():
    a, b = torch.tensor([[0.0]]), torch.tensor([[1.0]])
    assert mmd_loss(a, b, bandwidths=(1.0,), scale=1.0).item() == pytest.approx(2 - 2 * math.exp(-1))
    x = torch.randn(6, 3)
    assert mmd_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)


def test_coral_by_hand():
    a = torch.tensor([[0.0, 0.0], [2.0, 0.0]])  # covariance [[2, 0], [0, 0]]
    b = torch.tensor([[0.0, 0.0], [0.0, 2.0]])  # covariance [[0, 0], [0, 2]]
    assert coral_loss(a, b).item() == pytest.approx(8 / 16)


def test_unknown_alignment_is_a_user_error():
    with pytest.raises(ValueError, match="unknown alignment"):
        alignment_loss("cosine", torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(2), torch.zeros(2))
    with pytest.raises(ZSBenchError, match="alignment='cosine'"):
        fitted(alignment="cosine")


# -- training -----------------------------------------------------------------------------------------------------
def test_training_logs_every_loss_each_epoch_and_embeds_into_the_class_space():
    method = fitted(modality_adversary=True)
    assert [row["epoch"] for row in method.history_] == [0, 1]
    keys = set(method.history_[0])
    for m in ("sketch", "image"):
        assert {f"wasserstein_{m}", f"gp_{m}", f"generator_{m}", f"cycle_{m}", f"regression_{m}",
                f"synthetic_{m}"} <= keys
    assert {"alignment", "alignment_synthetic", "modality_adversary"} <= keys
    Z = method.embed("image", tiny_dataset().features["image"][:4])
    assert Z.shape == (4, 6) and Z.dtype == np.float32 and np.isfinite(Z).all()


def test_embed_before_fit_is_a_clear_error():
    with pytest.raises(NotFittedError, match="before fit"):
        CFSA(**TINY).embed("image", np.zeros((2, 12), dtype=np.float32))


@pytest.mark.parametrize("alignment", ["mmd", "coral"])
def test_each_alignment_trains(alignment):
    method = fitted(alignment=alignment)
    assert all(np.isfinite(row["alignment"]) for row in method.history_)


def test_the_alignment_loss_falls_during_training():
    # At a weight that lets it act (the released 1e-4 leaves it nearly inert by design).
    method = fitted(**{**TINY, "epochs": 8, "epoch_steps": 5, "synthesis": False, "align_weight": 10.0,
                       "regressor_lr": 1e-3})
    curve = [row["alignment"] for row in method.history_]
    assert curve[-1] < 0.5 * curve[0], curve


def test_same_seed_same_model_other_seed_other_model():
    probe = tiny_dataset().features["sketch"][:5]
    a, b, c = fitted(seed=4), fitted(seed=4), fitted(seed=5)
    np.testing.assert_array_equal(a.embed("sketch", probe), b.embed("sketch", probe))
    assert a.history_ == b.history_
    assert not np.array_equal(a.embed("sketch", probe), c.embed("sketch", probe))
    # A refit starts over: same history, same model.
    a.fit(build_train_view(tiny_dataset()), 4)
    np.testing.assert_array_equal(a.embed("sketch", probe), b.embed("sketch", probe))


def test_a_non_finite_loss_stops_training():
    view = build_train_view(tiny_dataset())
    features = {m: x.copy() for m, x in view.features.items()}
    features["image"][0] = np.inf
    broken = dataclasses.replace(view, features=features)
    with pytest.raises(TrainingDiverged, match="cfsa: loss"), np.errstate(invalid="ignore"):
        build_method("cfsa", TINY)[1].fit(broken, 0)


@pytest.mark.parametrize(("params", "message"), [
    ({"schedule": "gan-first"}, "schedule='gan-first'"),
    ({"schedule": "two-stage", "regressor_epochs": 0}, "regressor_epochs >= 1"),
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"dropout": 1.0}, "dropout must be in"),
    ({"regressor_steps": 0}, "regressor_steps must be a positive integer"),
])
def test_bad_hyper_parameters_are_user_errors(params, message):
    with pytest.raises(ZSBenchError, match=message):
        fitted(**params)


# -- every term can act: its gradient reaches what it should move, and at its default weight it moves it -------
def _trainer(ds: ZSDataset | None = None, seed: int = 0, **params):
    return build_method("cfsa", {**TINY, **params})[1].build(build_train_view(ds or tiny_dataset()), seed)


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


def _moved(part: str, iterations: int = 3, **params) -> torch.Tensor:
    """How far ``part``'s parameters move in ``iterations`` training iterations from a fixed start."""
    trainer = _trainer(**params)
    module = getattr(trainer.nets, part)
    before = _flat(module)
    for _ in range(iterations):
        trainer.step(progress=0.5)  # past the start of the adversary's reversal ramp (0 at progress 0)
    return _flat(module) - before


# (what the term moves, the term's switch with its default value, the value that switches it off)
TERMS = {
    "gradient penalty": ("critics", {"gp_weight": CFSA.gp_weight}, {"gp_weight": 0.0}),
    "cycle": ("generators", {"cycle_weight": CFSA.cycle_weight}, {"cycle_weight": 0.0}),
    "synthetic regression": ("regressors", {"synthetic_weight": 1.0}, {"synthetic_weight": 0.0}),
    "alignment": ("regressors", {"align_weight": CFSA.align_weight}, {"align_weight": 0.0}),
    "temperature": ("regressors", {"temperature": CFSA.temperature}, {"temperature": 1.0}),
    "synthesis": ("regressors", {"synthesis": True}, {"synthesis": False}),
    "unseen synthesis": ("regressors", {"synthesize_unseen": True}, {"synthesize_unseen": False}),
    "weight decay": ("regressors", {"regressor_weight_decay": 0.5}, {"regressor_weight_decay": 0.0}),
    "dropout": ("regressors", {"dropout": 0.2}, {"dropout": 0.0}),
    "modality adversary": ("regressors", {"modality_adversary": True}, {"modality_adversary": False}),
}


@pytest.mark.parametrize("term", list(TERMS))
def test_every_term_moves_what_it_should(term):
    """With the term on, the update of the parameters it acts on differs, by a visible share of the update."""
    part, on, off = TERMS[term]
    # The adversary's reversal ramp starts at 0: a weight large enough to see in a few steps. At the default
    # alignment weight the alignment's gradient dominates the regressors' (Adam sees its direction): the
    # synthetic regression's own share is measured with the alignment off, and what synthetic features do
    # in all (their regression plus their alignment) by the "synthesis" term.
    base = {"modality adversary": {"adversary_weight": 1.0},
            "synthetic regression": {"align_weight": 0.0},
            "temperature": {"align_weight": 10.0}}.get(term, {})
    with_term, without = _moved(part, **base, **on), _moved(part, **base, **off)
    assert with_term.abs().sum() > 0
    share = float((with_term - without).norm() / with_term.norm())
    assert share > 0.01, f"{term}: changes {part}' update by {share:.4f} of its size"


def test_each_loss_has_a_gradient_on_the_networks_it_trains():
    """One backward pass per term: the gradient reaches every parameter the term should move."""
    trainer = _trainer(modality_adversary=True)
    nets = trainer.nets
    (x, y), = list(trainer.real_batches().values())[:1]
    m = nets.modalities[0]
    c = trainer.targets[y]
    fake = nets.generators[m](c, trainer._noise(len(y)))
    checks = {
        "critic": (critic_loss(nets.critics[m](x, c), nets.critics[m](fake.detach(), c)), nets.critics[m]),
        "penalty": (gradient_penalty(nets.critics[m], x, fake.detach(), c), nets.critics[m]),
        "cycle": (cycle_loss(nets.regressors[m](fake), c), nets.generators[m]),
        "regression": (cycle_loss(nets.regressors[m](x), c), nets.regressors[m]),
    }
    real = trainer.real_batches()
    a, b = nets.modalities
    checks["alignment"] = (alignment_loss("cmpm", nets.regressors[a](real[a][0]), nets.regressors[b](real[b][0]),
                                          real[a][1], real[b][1], 0.1), nets.regressors[a])
    for name, (loss, module) in checks.items():
        nets.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name
        # The gradient of D with respect to x depends on neither the first layer's condition block nor the
        # biases, so the penalty leaves those out; every other term reaches every weight matrix.
        weights = {n: p.grad for n, p in module.named_parameters() if p.dim() == 2}
        if name == "penalty":
            assert weights.pop("condition_weight") is None
        assert all(g is not None and g.abs().sum() > 0 for g in weights.values()), name


def test_the_regressors_have_their_own_optimiser_and_updates():
    trainer = _trainer(regressor_lr=3e-3, lr=2e-4, regressor_steps=3, regressor_weight_decay=1e-3)
    assert trainer.opt_regressor.param_groups[0]["lr"] == 3e-3
    assert trainer.opt_regressor.param_groups[0]["weight_decay"] == 1e-3
    assert trainer.opt_generator.param_groups[0]["lr"] == 2e-4 == trainer.opt_critic.param_groups[0]["lr"]
    trainer.step()
    trainer.step()
    regressor_state = trainer.opt_regressor.state[next(trainer.nets.regressors.parameters())]
    generator_state = trainer.opt_generator.state[next(trainer.nets.generators.parameters())]
    critic_state = trainer.opt_critic.state[next(trainer.nets.critics.parameters())]
    assert (int(regressor_state["step"]), int(generator_state["step"]), int(critic_state["step"])) == (6, 2, 4)
    dropouts = [layer.p for layer in trainer.nets.regressors.modules() if isinstance(layer, torch.nn.Dropout)]
    assert dropouts == [CFSA.dropout] * 2


# -- batches, schedule, budget, retrieval statistics ------------------------------------------------------------
def _rows(batch: torch.Tensor, features: torch.Tensor) -> list[int]:
    """The row of ``features`` each row of ``batch`` is (features rows are distinct)."""
    return [int(torch.nonzero((features == row).all(dim=1))[0]) for row in batch]


@pytest.mark.parametrize("paired", [True, False])
def test_batches_draw_the_same_items_in_every_modality_on_paired_data(paired):
    ds = make_tiny_dataset(paired=paired)
    trainer = _trainer(ds)
    assert trainer.paired is paired
    rows = {m: _rows(x, trainer.features[m]) for m, (x, _) in trainer.real_batches().items()}
    first, second = rows.values()
    assert (first == second) is paired
    labels = [y for _, y in trainer.real_batches().values()]
    if paired:
        assert torch.equal(*labels)


def test_two_stage_trains_the_gans_first_then_the_regressors_on_synthetic_features():
    method = build_method("cfsa", {**TINY, "schedule": "two-stage", "regressor_epochs": 2})[1]
    generators = []
    method.epoch_hook_ = lambda epoch, entry: generators.append(_flat(method.trainer_.nets.generators))
    method.fit(build_train_view(tiny_dataset()), 0)
    stages = [("wasserstein_image" in row, "synthetic_image" in row) for row in method.history_]
    assert stages == [(True, False), (True, False), (False, True), (False, True)]
    assert not torch.equal(generators[0], generators[1]) and torch.equal(generators[2], generators[3])
    assert torch.equal(generators[1], generators[3])
    joint = [("wasserstein_image" in row, "synthetic_image" in row) for row in fitted().history_]
    assert joint == [(True, True), (True, True)]


def test_the_budget_is_in_iterations_not_in_passes_over_the_data():
    totals = []
    for per_class in (10, 40):
        method = fitted(ds=tiny_dataset(per_class=per_class), regressor_epochs=1)
        totals.append((method.progress_total_, method.progress_done_))
    assert totals == [((TINY["epochs"] + 1) * TINY["epoch_steps"],) * 2] * 2


def test_standardised_embeddings_use_the_seen_class_training_statistics():
    ds = tiny_dataset()
    view = build_train_view(ds)
    raw = fitted(ds=ds, standardize_embeddings=False)
    scaled = fitted(ds=ds, standardize_embeddings=True)
    for m in view.modalities:
        Z = scaled.embed(m, view.features[m])
        np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-4)
        np.testing.assert_allclose(Z.std(axis=0), 1, atol=1e-3)
        R = raw.embed(m, view.features[m])  # same training, only the retrieval-time scaling differs
        np.testing.assert_allclose(Z, (R - R.mean(axis=0)) / R.std(axis=0), atol=1e-4)


# -- the ablations remove exactly what they name ---------------------------------------------------------------
def _model_after(name: str, ds: ZSDataset, **params) -> np.ndarray:
    probe = tiny_dataset().features["image"][-6:]  # fixed seen-class rows, whatever ``ds`` changed
    return fitted(name, ds, seed=2, **params).embed("image", probe)


def test_no_synthesis_trains_no_gan_and_uses_no_synthetic_feature():
    ds = tiny_dataset()
    untouched = _trainer(ds, seed=2).nets
    for name, trained in (("cfsa-no-synthesis", False), ("cfsa", True)):
        method = fitted(name, ds, seed=2)
        nets = method.trainer_.nets
        for part in ("generators", "critics"):
            assert torch.equal(_flat(getattr(nets, part)), _flat(getattr(untouched, part))) is not trained, part
        logged = set(method.history_[0])
        assert any(k.startswith(("synthetic_", "wasserstein_", "cycle_")) for k in logged) is trained
        assert ("alignment_synthetic" in logged) is trained


def test_no_unseen_synthesis_really_ignores_the_unseen_class_embeddings():
    ds = tiny_dataset()
    emb = ds.class_embeddings.copy()
    emb[ds.unseen_classes] = np.random.default_rng(3).standard_normal((len(ds.unseen_classes), emb.shape[1]))
    moved = dataclasses.replace(ds, class_embeddings=emb.astype(np.float32))
    for name in ("cfsa", "cfsa-no-synthesis"):  # the released objective synthesises seen classes only
        np.testing.assert_array_equal(_model_after(name, ds), _model_after(name, moved))
    assert not np.array_equal(_model_after("cfsa-unseen-synthesis", ds), _model_after("cfsa-unseen-synthesis", moved))


def test_synthesis_draws_unseen_classes_only_when_asked():
    ds = tiny_dataset()
    for flag in (True, False):
        synthetic = _trainer(ds, synthesize_unseen=flag).synthetic_batches()
        ids = synthetic["image"][1].numpy()
        assert np.isin(ids, ds.unseen_classes).any() == flag
        assert len(ids) == TINY["batch_size"] * (2 if flag else 1)
        # Coupled: every modality's synthetic batch has the same classes.
        assert torch.equal(synthetic["image"][1], synthetic["sketch"][1])


def test_no_cycle_really_removes_the_cycle_term():
    method = fitted("cfsa-no-cycle")
    assert method.cycle_weight == 0.0
    assert not any(key.startswith("cycle_") for key in method.history_[0])
    # The generators' update must not depend on the regressors any more.
    results = []
    for cycle_weight in (0.0, CFSA.cycle_weight):
        generators = []
        for regressor_seed in (0, 1):
            trainer = _trainer(cycle_weight=cycle_weight)
            torch.manual_seed(regressor_seed)
            for p in trainer.nets.regressors.parameters():
                torch.nn.init.normal_(p)
            trainer.generator_update(LossMeter())
            generators.append(_flat(trainer.nets.generators))
        results.append(torch.equal(*generators))
    assert results == [True, False]


def test_no_align_really_decouples_the_modalities():
    """Without alignment, one modality's regressor must not depend on the other modality's features."""
    ds = tiny_dataset()
    features = {m: x.copy() for m, x in ds.features.items()}
    features["sketch"] = features["sketch"][:, ::-1].copy()  # same statistics, other content
    other = dataclasses.replace(ds, features=features)
    # The modality adversary couples the modalities too (its classifier sees both): off here.
    np.testing.assert_array_equal(_model_after("cfsa-no-align", ds, modality_adversary=False),
                                  _model_after("cfsa-no-align", other, modality_adversary=False))
    assert not np.array_equal(_model_after("cfsa", ds, modality_adversary=False),
                              _model_after("cfsa", other, modality_adversary=False))
    assert "alignment" not in fitted("cfsa-no-align").history_[0]


def test_no_unseen_sample_reaches_training():
    ds = tiny_dataset()
    trainer = _trainer(ds)
    for m in ds.modalities:
        assert not np.isin(trainer.labels[m].numpy(), ds.unseen_classes).any()
    features = {m: x.copy() for m, x in ds.features.items()}
    for m, x in features.items():
        rows = np.isin(ds.labels[m], ds.unseen_classes)
        x[rows] = 100.0
    changed = dataclasses.replace(ds, features=features)
    for name in ("cfsa", "cfsa-no-synthesis"):
        np.testing.assert_array_equal(_model_after(name, ds, standardize_embeddings=True),
                                      _model_after(name, changed, standardize_embeddings=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_trains_on_cuda():
    method = build_method("cfsa", TINY)[1]
    method.device = "cuda"
    method.fit(build_train_view(tiny_dataset()), 0)
    assert np.isfinite(method.embed("image", tiny_dataset().features["image"][:3])).all()


def test_step_config_is_built_from_the_methods_fields():
    """StepConfig has no defaults of its own: every field is the method's field of the same name."""
    from cfsa.training import StepConfig

    method = CFSA(batch_size=17, n_critic=4, cycle_weight=0.25)
    config = method.step_config()
    assert {f.name for f in dataclasses.fields(StepConfig)} <= {f.name for f in dataclasses.fields(CFSA)}
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(StepConfig))
    assert (config.batch_size, config.n_critic, config.cycle_weight) == (17, 4, 0.25)


def test_the_search_space_names_real_hyper_parameters_and_valid_values():
    from benchmark.contract import Choice, IntRange, LogUniform, Uniform

    fields = {f.name: f for f in dataclasses.fields(CFSA) if f.init}
    for name, space in CFSA.search_space.items():
        assert name in fields, name
        if isinstance(space, Choice):
            values = space.values
        elif isinstance(space, (LogUniform, Uniform, IntRange)):
            values = (space.low, space.high)
        else:
            raise AssertionError(f"{name}: {space!r}")
        for value in values:  # every corner of the space is a configuration fit() accepts
            method = CFSA(**{**TINY, name: value, "regressor_epochs": 1})
            method.validate_params()
