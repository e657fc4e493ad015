"""CFSA's defaults are the paper family's released objective (JFSE's train.py), its cpu budget caps only length,
width and learning rate, and the emoji-selected configuration stays reproducible as a grid file.

The expected values below are copied by hand from ``CFM-MSG/Code_JFSE`` ``train.py`` (commit 3c9cac5), the
line numbers beside them; a change to CFSA's balance has to change this file too.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
import torch

import cfsa.method
import cfsa.training
from benchmark.core.protocol import build_train_view
from benchmark.execution.grid import load_grid
from benchmark.registry import build_method
from cfsa.method import CFSA
from tests.test_cfsa import tiny_dataset

ROOT = Path(__file__).resolve().parents[1]

#: field -> (JFSE's value, how the module docstring states it)
RELEASED = {
    "cycle_weight": (0.1, "cycle_weight = 0.1"),                    # l. 211: 0.1 * (cyc_img + cyc_txt)
    "synthetic_weight": (0.01, "synthetic_weight = 0.01"),          # l. 212: 0.01 * (cyc_img + cyc_txt ...)
    "align_weight": (1e-4, "align_weight = 1e-4"),                  # l. 197: 0.0001 * cmpm(real)
    "synthetic_align_weight": (1e-6, "synthetic_align_weight = 1e-6"),  # l. 171 x l. 212: 0.01 * 0.0001
    "modality_adversary": (True, "modality_adversary = True"),      # l. 199-202
    "adversary_weight": (0.01, "adversary_weight = 0.01"),          # l. 212: 0.01 * dann_a_loss
    "synthesize_unseen": (False, "synthesize_unseen = False"),      # l. 95, 99-100 never fed
    "shared_noise": (False, "shared_noise = False"),                # l. 454-457
    "noise_dim": (0, "noise_dim = 0"),                              # l. 63-64: noise size = attribute size
    "distance_reduction": ("mean", 'distance_reduction = "mean"'),  # l. 162, 167, 194-195: reduce_mean
    "gp_weight": (10.0, "gp_weight = 10"),                          # l. 103, 136
    "n_critic": (5, "n_critic = 5"),                                # l. 463
    "critic_same_batch": (True, "critic_same_batch = True"),        # l. 463-473: one feed for the 5 steps
    "lr": (1e-4, "lr = regressor_lr = 1e-4"),                       # l. 66-67, 419-424
    "regressor_lr": (1e-4, "lr = regressor_lr = 1e-4"),             # l. 68, 416
    "beta1": (0.5, "beta1 = regressor_beta1 = 0.5"),                # l. 417-426
    "regressor_beta1": (0.5, "beta1 = regressor_beta1 = 0.5"),
    "regressor_weight_decay": (0.0, "regressor_weight_decay = 0"),  # plain Adam
    "regressor_steps": (1, "regressor_steps = 1"),                  # l. 474: one regressor step per iteration
    "dropout": (0.0, "dropout = 0"),                                # l. 239-251: no dropout
    "hidden": (4096, "hidden = 4096"),                              # l. 227-263
    "epochs": (500, "epochs = 500"),                                # l. 436
    "epoch_steps": (0, "epoch_steps = 0"),                          # l. 41-54: an epoch is one pass
    "batch_size": (64, "batch_size = 64"),                          # l. 60
    "alignment": ("cmpm", "CMPM"),                                  # l. 171, 197
}


@pytest.mark.parametrize("field", sorted(RELEASED))
def test_every_default_is_the_released_value_and_the_docstring_cites_it(field):
    value, cited = RELEASED[field]
    assert getattr(CFSA(), field) == value
    assert cited in inspect.getdoc(cfsa.method), f"the docstring does not state {cited!r}"


def test_the_optimisers_are_the_released_adam_settings():
    trainer = build_method("cfsa", {"hidden": 16}, "paper")[1].build(build_train_view(tiny_dataset()), 0)
    for optimiser in (trainer.opt_critic, trainer.opt_generator, trainer.opt_regressor):
        (group,) = optimiser.param_groups
        assert group["lr"] == 1e-4 and group["betas"] == (0.5, 0.999)
    assert trainer.opt_regressor.param_groups[0]["weight_decay"] == 0.0
    assert trainer.nets.adversary is not None


def test_the_cpu_budget_changes_only_length_width_and_learning_rates():
    paper = build_method("cfsa", None, "paper")[1].get_params()
    cpu = build_method("cfsa", None, "cpu")[1].get_params()
    changed = {k: cpu[k] for k in cpu if cpu[k] != paper[k]}
    assert changed == {"hidden": 256, "epochs": 40, "epoch_steps": 25, "lr": 1e-3, "regressor_lr": 1e-3}
    # A variant keeps its own change at every budget.
    assert build_method("cfsa-no-cycle", None, "cpu")[1].cycle_weight == 0.0


def test_an_epoch_of_zero_steps_is_one_pass_over_the_training_data():
    view = build_train_view(tiny_dataset())
    rows = max(len(view.labels[m]) for m in view.modalities)
    method = build_method("cfsa", {"hidden": 8, "epochs": 2, "epoch_steps": 0, "batch_size": 8, "n_critic": 1})[1]
    method.fit(view, 0)
    assert method.progress_total_ == 2 * -(-rows // 8) and len(method.history_) == 2


@pytest.mark.parametrize("same", [True, False])
def test_the_critic_updates_of_an_iteration_share_one_batch_when_asked(same, monkeypatch):
    trainer = build_method("cfsa", {"hidden": 8, "batch_size": 8, "n_critic": 4, "critic_same_batch": same},
                           "paper")[1].build(build_train_view(tiny_dataset()), 0)
    calls = []
    original = trainer.real_batches
    monkeypatch.setattr(trainer, "real_batches", lambda: calls.append(1) or original())
    monkeypatch.setattr(trainer, "generator_update", lambda logs: None)
    trainer.gan_step(cfsa.training.LossMeter())
    assert len(calls) == (1 if same else 4)


@pytest.mark.parametrize("shared", [False, True])
def test_noise_is_drawn_per_modality_unless_shared(shared):
    trainer = build_method("cfsa", {"hidden": 8, "batch_size": 8, "shared_noise": shared},
                           "paper")[1].build(build_train_view(tiny_dataset()), 0)
    _, noises = trainer.synthetic_conditions()
    assert torch.equal(noises["sketch"], noises["image"]) is shared


def test_the_emoji_selected_configuration_spells_out_every_hyper_parameter():
    (entry,) = load_grid(ROOT / "configs" / "cfsa-emoji-selected.toml").methods
    fields = {f.name for f in dataclasses.fields(CFSA) if f.init}
    assert entry.spec == "cfsa" and set(entry.params) == fields
    # The balance chosen on emoji: the dominant cosine-temperature alignment, unseen synthesis, shared noise.
    assert (entry.params["align_weight"], entry.params["synthesize_unseen"], entry.params["shared_noise"],
            entry.params["distance_reduction"]) == (10.0, True, True, "sum")


def test_the_ablations_remove_exactly_one_component():
    defaults = build_method("cfsa")[1].get_params()
    expected = {"cfsa-no-synthesis": {"synthesis": False}, "cfsa-no-cycle": {"cycle_weight": 0.0},
                "cfsa-no-align": {"alignment": "none"}, "cfsa-no-adversary": {"modality_adversary": False},
                "cfsa-unseen-synthesis": {"synthesize_unseen": True}}
    for name, change in expected.items():
        params = build_method(name)[1].get_params()
        assert {k: v for k, v in params.items() if v != defaults[k]} == change, name
