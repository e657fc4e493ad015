"""CFSA: every network's shapes and gradients, hand-computed losses, determinism, ablation switches, no leakage."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from benchmark.contract import TrainingDiverged, ZSBenchError
from benchmark.data import Split
from benchmark.protocol import ZSDataset, build_train_view
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

TINY = {"hidden": 16, "epochs": 2, "batch_size": 8, "n_critic": 2}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny tensors: on a loaded machine torch's thread pool spends far longer waiting than computing.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def test_cycle_loss_by_hand():
    assert cycle_loss(torch.tensor([[1.0, 2.0]]), torch.zeros(1, 2)).item() == pytest.approx(2.5)


def test_cmpm_by_hand():
    a, b = torch.eye(2), torch.eye(2)
    labels = torch.tensor([0, 1])
    p_match = math.e / (math.e + 1)
    p_other = 1 / (math.e + 1)
    eps = 1e-8
    one_direction = p_match * (math.log(p_match) - math.log(1 + eps)) + p_other * (math.log(p_other) - math.log(eps))
    assert cmpm_loss(a, b, labels, labels).item() == pytest.approx(2 * one_direction, rel=1e-5)
    # Same class everywhere: q is uniform and p is uniform too (equal logits) -> zero divergence.
    same = torch.tensor([0, 0])
    ones = torch.ones(2, 2)
    assert cmpm_loss(ones, ones, same, same).item() == pytest.approx(0.0, abs=1e-6)


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
    assert {"alignment", "modality_adversary"} <= keys
    Z = method.embed("image", tiny_dataset().features["image"][:4])
    assert Z.shape == (4, 6) and Z.dtype == np.float32 and np.isfinite(Z).all()


@pytest.mark.parametrize("alignment", ["mmd", "coral"])
def test_each_alignment_trains(alignment):
    method = fitted(alignment=alignment)
    assert all(np.isfinite(row["alignment"]) for row in method.history_)


def test_same_seed_same_model_other_seed_other_model():
    probe = tiny_dataset().features["sketch"][:5]
    a, b, c = fitted(seed=4), fitted(seed=4), fitted(seed=5)
    np.testing.assert_array_equal(a.embed("sketch", probe), b.embed("sketch", probe))
    assert a.history_ == b.history_
    assert not np.array_equal(a.embed("sketch", probe), c.embed("sketch", probe))


def test_a_non_finite_loss_stops_training():
    view = build_train_view(tiny_dataset())
    features = {m: x.copy() for m, x in view.features.items()}
    features["image"][0] = np.inf
    broken = dataclasses.replace(view, features=features)
    with pytest.raises(TrainingDiverged, match="cfsa: loss"), np.errstate(invalid="ignore"):
        build_method("cfsa", TINY)[1].fit(broken, 0)


def _model_after(name: str, ds: ZSDataset, **params) -> np.ndarray:
    probe = tiny_dataset().features["image"][-6:]  # fixed seen-class rows, whatever ``ds`` changed
    return fitted(name, ds, seed=2, **params).embed("image", probe)


def test_no_synthesis_really_ignores_the_unseen_class_embeddings():
    ds = tiny_dataset()
    emb = ds.class_embeddings.copy()
    emb[ds.unseen_classes] = np.random.default_rng(3).standard_normal((len(ds.unseen_classes), emb.shape[1]))
    moved = dataclasses.replace(ds, class_embeddings=emb.astype(np.float32))
    np.testing.assert_array_equal(_model_after("cfsa-no-synthesis", ds), _model_after("cfsa-no-synthesis", moved))
    assert not np.array_equal(_model_after("cfsa", ds), _model_after("cfsa", moved))


def test_no_cycle_really_removes_the_cycle_term():
    method = fitted("cfsa-no-cycle")
    assert method.cycle_weight == 0.0
    assert not any(key.startswith("cycle_") for key in method.history_[0])
    # The generators' update must not depend on the regressors any more.
    ds = tiny_dataset()
    results = []
    for cycle_weight in (0.0, 0.1):
        generators = []
        for regressor_seed in (0, 1):
            trainer = build_method("cfsa", {**TINY, "cycle_weight": cycle_weight})[1].build(build_train_view(ds), 0)
            torch.manual_seed(regressor_seed)
            for p in trainer.nets.regressors.parameters():
                torch.nn.init.normal_(p)
            trainer.generator_update({})
            generators.append(torch.cat([p.detach().flatten() for p in trainer.nets.generators.parameters()]))
        results.append(torch.equal(*generators))
    assert results == [True, False]


def test_no_align_really_decouples_the_modalities():
    """Without alignment, one modality's regressor must not depend on the other modality's features."""
    ds = tiny_dataset()
    features = {m: x.copy() for m, x in ds.features.items()}
    features["sketch"] = features["sketch"][:, ::-1].copy()  # same statistics, other content
    other = dataclasses.replace(ds, features=features)
    np.testing.assert_array_equal(_model_after("cfsa-no-align", ds, cycle_weight=0.0, synthetic_weight=0.0),
                                  _model_after("cfsa-no-align", other, cycle_weight=0.0, synthetic_weight=0.0))
    assert not np.array_equal(_model_after("cfsa", ds, cycle_weight=0.0, synthetic_weight=0.0),
                              _model_after("cfsa", other, cycle_weight=0.0, synthetic_weight=0.0))
    assert "alignment" not in fitted("cfsa-no-align").history_[0]


def test_no_unseen_sample_reaches_training():
    ds = tiny_dataset()
    trainer = build_method("cfsa", TINY)[1].build(build_train_view(ds), 0)
    for m in ds.modalities:
        assert not np.isin(trainer.labels[m].numpy(), ds.unseen_classes).any()
    features = {m: x.copy() for m, x in ds.features.items()}
    for m, x in features.items():
        rows = np.isin(ds.labels[m], ds.unseen_classes)
        x[rows] = 100.0
    changed = dataclasses.replace(ds, features=features)
    np.testing.assert_array_equal(_model_after("cfsa", ds), _model_after("cfsa", changed))


def test_synthesis_draws_unseen_classes_only_when_asked():
    ds = tiny_dataset()
    for flag in (True, False):
        trainer = build_method("cfsa", {**TINY, "synthesize_unseen": flag})[1].build(build_train_view(ds), 0)
        synthetic = trainer.generator_update({})
        ids = synthetic["image"][1].numpy()
        assert np.isin(ids, ds.unseen_classes).any() == flag
        assert len(ids) == TINY["batch_size"] * (2 if flag else 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_trains_on_cuda():
    method = build_method("cfsa", TINY)[1]
    method.device = "cuda"
    method.fit(build_train_view(tiny_dataset()), 0)
    assert np.isfinite(method.embed("image", tiny_dataset().features["image"][:3])).all()


def test_step_config_defaults_are_the_methods():
    """perf train times StepConfig's defaults: they must be CFSA's own."""
    import dataclasses

    from cfsa.method import CFSA
    from cfsa.training import StepConfig

    assert CFSA().step_config() == StepConfig()
    assert {f.name for f in dataclasses.fields(StepConfig)} <= {f.name for f in dataclasses.fields(CFSA)}
