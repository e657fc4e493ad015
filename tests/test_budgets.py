"""Training budgets (cpu, paper) in a run's identity and in the report, and the one convergence rule on
hand-made loss curves."""

from __future__ import annotations

import dataclasses

import pytest

from benchmark.contract import ZSBenchError
from benchmark.core.convergence import THRESHOLD, assess, fit_convergence
from benchmark.core.store import ResultStore
from benchmark.execution.grid import grid_from_cli
from benchmark.execution.plan import check_grid, make_spec, plan_grid
from benchmark.registry import build_method
from tests.conftest import run_method


def test_a_budget_is_part_of_the_identity_except_the_cpu_default(tiny_sketch):
    cpu = make_spec("cfsa", 0, tiny_sketch.name)
    paper = make_spec("cfsa", 0, tiny_sketch.name, budget="paper")
    assert "budget" not in cpu.identity(tiny_sketch)  # so records from before budgets keep their names
    assert paper.identity(tiny_sketch)["budget"] == "paper"
    assert paper.params["hidden"] == 4096 and cpu.params["hidden"] == 256
    assert ResultStore("r").path_for(cpu.identity(tiny_sketch)) != ResultStore("r").path_for(
        dataclasses.replace(cpu, budget="paper").identity(tiny_sketch))


#: A method that declares no ``paper`` budget (a closed-form test spy, never registered).
CPU_ONLY = "benchmark.testing:RidgeProjection"


def test_a_method_offers_only_the_budgets_it_declares():
    from benchmark.testing import RidgeProjection

    assert set(RidgeProjection.budgets) == {"cpu"}  # the premise: the spy has no paper budget
    with pytest.raises(ZSBenchError, match=f"{CPU_ONLY} has no 'paper' training budget \\(its budgets: cpu\\)"):
        build_method(CPU_ONLY, None, "paper")
    grid = grid_from_cli(None, f"cfsa,{CPU_ONLY}", "wikipedia", True, None, 0.05, "0", None, budget="paper")
    with pytest.raises(ZSBenchError, match=f"{CPU_ONLY} has no 'paper' training budget"):
        check_grid(grid)
    with pytest.raises(ZSBenchError, match="--budget must be one of cpu, paper"):
        check_grid(grid_from_cli(None, "cfsa", "wikipedia", True, None, 0.05, "0", None, budget="gpu"))
    plan = plan_grid(grid_from_cli(None, "cfsa", "wikipedia", True, None, 0.05, "0", None, budget="paper"))
    assert [s.budget for s in plan.specs] == ["paper"] and plan.provenance["budget"] == "paper"


#: The iterative baselines and CFSA: each declares the released setting (``paper``) and a ``cpu`` budget.
ITERATIVE = ("acmr", "cfsa", "cvae", "dadn", "dscmr", "sem-pcyc", "semantic-regression")

#: Every registered method's parameters at the ``cpu`` budget, written out by hand from the defaults before
#: the ``paper`` budgets existed, then DADN's 11 epochs and semantic-regression's 120 (lengths at which their
#: emoji runs converge by the suite's rule): a cpu run's identity (and so every committed record's name)
#: depends on them.
CPU_PARAMS = {
    "dscmr": {"hidden": 2048, "common_dim": 1024, "alpha": 1e-3, "beta": 0.1, "lr": 1e-4, "beta1": 0.5,
              "beta2": 0.999, "batch_size": 100, "epochs": 30, "max_steps_per_epoch": 30},
    "acmr": {"common_dim": 40, "image_hidden": (512, 100), "text_hidden": (40, 100), "label_weight": 100.0,
             "margin": 0.1, "alpha": 5.0, "lr": 1e-4, "beta1": 0.5, "batch_size": 64, "epochs": 30,
             "max_steps_per_epoch": 100},
    "dadn": {"hidden": 512, "critic_hidden": (512, 256), "keep_prob": 0.9, "margin": 20.0,
             "bandwidths": (2.0, 5.0, 10.0, 20.0, 40.0, 80.0), "lr": 1e-4, "decay_rate": 0.96, "decay_epochs": 10,
             "batch_size": 64, "epochs": 11, "max_steps_per_epoch": 50},
    "sem-pcyc": {"semantic_dim": 128, "feature_dim": 512, "epochs": 10, "batches_per_epoch": 100, "batch_size": 128,
                 "lr": 1e-4, "momentum": 0.9, "weight_semantic": 10.0, "weight_image": 10.0, "weight_sketch": 10.0,
                 "weight_cycle": 1.0, "weight_adversarial": 1.0, "weight_classification": 1.0,
                 "weight_regression": 0.1, "weight_disc_semantic": 0.25, "weight_disc_sketch": 0.5,
                 "weight_disc_image": 0.5, "weight_autoencoder_sparsity": 0.001, "query_modality": None},
    "cvae": {"hidden_dim": 512, "latent_dim": 128, "feature_dim": 512, "epochs": 10, "min_steps": 200,
             "max_steps_per_epoch": 100, "batch_size": 128, "lr": 2e-4, "beta1": 0.5, "dropout": 0.3,
             "regulariser_weight": 10.0, "n_samples": 100, "query_modality": None},
    "semantic-regression": {"hidden": 512, "epochs": 120, "batch_size": 128, "lr": 1e-3, "weight_decay": 1e-4,
                            "dropout": 0.2, "max_steps_per_epoch": 100, "standardize_embeddings": False},
    "cca": {"n_components": 64, "reg": 0.1},
    "random": {"dim": 16},
}

#: The released length (and width, where ours differs) at the ``paper`` budget, with its source.
PAPER_PARAMS = {
    # penghu-cs/DSCMR: train_model.py l. 45 num_epochs=500 (main.py l. 24 MAX_EPOCH = 500), full passes
    "dscmr": {"epochs": 500, "max_steps_per_epoch": None, "batch_size": 100, "hidden": 2048, "common_dim": 1024},
    # sunpeng981712364/ACMR_demo: models/adv_crossmodal_triplet_wiki.py l. 55 epoch = 50, full passes (l. 33)
    "acmr": {"epochs": 50, "max_steps_per_epoch": None, "batch_size": 64},
    # PKU-ICST-MIPL/DADN_TCSVT2019: DADN.py l. 27 total_epoch 10, full passes (l. 310); model.py l. 16-17, 51-54
    "dadn": {"epochs": 10, "max_steps_per_epoch": None, "batch_size": 64, "hidden": 4096,
             "critic_hidden": (4096, 2048)},
    # AnjanDutta/sem-pcyc: src/options.py l. 53 --epochs 100, l. 46 --epoch-size 100 (early stop l. 51 not run)
    "sem-pcyc": {"epochs": 100, "batches_per_epoch": 100, "batch_size": 128, "semantic_dim": 128},
    # ShivaKrishnaM/ZS-SBIR: trainCVAE_pre.py l. 38-39 MAX_EPOCH 25, batch 128, full passes; l. 48-49 z 1024, h 2048
    "cvae": {"epochs": 25, "max_steps_per_epoch": None, "min_steps": 0, "batch_size": 128, "latent_dim": 1024,
             "hidden_dim": 2048, "feature_dim": None},
    # no release: the suite's own baseline, whose paper budget is its cpu one
    "semantic-regression": {"epochs": 120, "max_steps_per_epoch": 100, "batch_size": 128, "hidden": 512},
    # CFM-MSG/Code_JFSE train.py l. 60, 436 (cfsa/method.py)
    "cfsa": {"epochs": 500, "epoch_steps": 0, "batch_size": 64, "hidden": 4096},
}


def test_every_iterative_method_offers_the_released_budget():
    from benchmark.registry import available_methods

    for name, (cls, _) in available_methods().items():
        if cls.convergence_loss:  # iterative training (cca and random have none)
            assert {"cpu", "paper"} <= set(cls.budgets), name
            assert name in ITERATIVE or name.startswith("cfsa-"), f"{name}: add it to ITERATIVE and PAPER_PARAMS"
        for budget, overrides in cls.budgets.items():
            assert set(overrides) <= set(build_method(name)[1].get_params()), (name, budget)


@pytest.mark.parametrize("name", sorted(CPU_PARAMS))
def test_a_cpu_run_resolves_to_the_parameters_written_out_by_hand(name):
    assert build_method(name, None, "cpu")[1].get_params() == CPU_PARAMS[name]
    assert build_method(name)[1].get_params() == CPU_PARAMS[name]  # cpu is the default budget


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_the_paper_budget_is_the_released_length(name):
    params = build_method(name, None, "paper")[1].get_params()
    assert {k: params[k] for k in PAPER_PARAMS[name]} == PAPER_PARAMS[name]


@pytest.mark.parametrize("name", sorted(ITERATIVE))
def test_no_method_searches_its_training_length(name):
    # the length is selected per trial on validation classes (benchmark.core.lengths), never sampled
    from benchmark.registry import available_methods

    cls = available_methods()[name][0]
    _, method = build_method(name, None)
    assert not set(method.length_params(7)) & set(cls.search_space), name


def test_zsbench_run_accepts_the_paper_budget_for_dadn(monkeypatch, capsys, tmp_path):
    import json
    import sys

    from benchmark.cli import main

    args = ["zsbench", "run", "--methods", "dadn", "--dataset", "wikipedia", "--synthetic", "--scale", "0.05",
            "--budget", "paper", "--param", "dadn.hidden=16", "--param", "dadn.critic_hidden=[16, 8]",
            "--param", "dadn.epochs=1", "--results", str(tmp_path), "--json"]
    monkeypatch.setattr(sys, "argv", args)
    try:
        main()
    except SystemExit as stop:
        assert stop.code in (0, None), capsys.readouterr().err
    (path,) = tmp_path.rglob("dadn/*.json")
    record = json.loads(path.read_text())
    assert record["budget"] == "paper" and record["config"]["max_steps_per_epoch"] is None


def test_the_record_and_the_report_keep_budgets_apart(tmp_path, tiny_sketch):
    from benchmark.report.records import group_runs, load_runs, sections_of
    from benchmark.report.tables import comparison_table

    store = ResultStore(tmp_path)
    quick = {"hidden": 8, "epochs": 1, "epoch_steps": 2, "batch_size": 8, "n_critic": 1}
    cpu = run_method("cfsa", tiny_sketch, 0, store, params=quick).record
    paper = run_method("cfsa", tiny_sketch, 0, store, params=quick, budget="paper").record
    assert cpu.budget is None and paper.budget == "paper" and paper.training_budget == "paper"
    ((key, runs),) = group_runs(load_runs(tmp_path)).items()
    assert set(sections_of(runs)) == {"defaults", "defaults, paper training budget"}
    table = comparison_table(key, runs, "sketch->image")
    assert [s.label for s in table.sections] == ["default hyper-parameters",
                                                 "default hyper-parameters, paper training budget"]
    assert "Training budgets (cpu, paper) are ranked in separate sections." in table.caption
    assert "selected on validation classes" not in table.caption  # neither section was tuned


def test_every_record_says_whether_training_converged(tmp_path, tiny_sketch):
    record = run_method("semantic-regression", tiny_sketch, 0, ResultStore(tmp_path),
                        params={"epochs": 5, "hidden": 16}).record
    losses = [sum(v for k, v in e.items() if k.startswith("mse_")) for e in record.training_log]
    expected = abs(losses[-1] - losses[-2]) / abs(losses[-2])  # 5 epochs: the last fifth is the last step
    assert record.convergence["relative_change"] == pytest.approx(expected, rel=1e-5)
    assert record.convergence["converged"] is (expected < THRESHOLD)
    closed = run_method("cca", tiny_sketch, 0, ResultStore(tmp_path)).record
    assert closed.convergence["converged"] is True


@pytest.mark.parametrize("curve, converged, change", [
    ([10.0, 5.0, 4.0, 3.99, 3.98, 3.97, 3.96, 3.96, 3.95, 3.95], True, (3.96 - 3.95) / 3.96),  # settled
    ([10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0], False, (3.0 - 1.0) / 3.0),  # still falling fast
    ([1.0, 1.0, 1.0, 1.0, 1.2], False, 0.2),  # rose at the end
    ([2.0, 1.9], False, 0.05),  # exactly at the threshold is not below it
])
def test_the_rule_on_hand_made_curves(curve, converged, change):
    verdict = fit_convergence(curve)
    assert verdict["converged"] is converged
    assert verdict["relative_change"] == pytest.approx(change, abs=1e-6)


def test_a_method_fitted_per_modality_pair_converged_only_when_every_fit_did():
    log = [{"epoch": e, "modalities": "sketch+image", "loss": v} for e, v in enumerate([5, 4, 4, 4, 4])]
    log += [{"epoch": e, "modalities": "image+text", "loss": v} for e, v in enumerate([5, 4, 3, 2, 1])]
    verdict = assess(log, ("loss",))
    assert verdict["converged"] is False
    assert verdict["fits"]["sketch+image"]["converged"] is True and verdict["fits"]["image+text"]["converged"] is False
    assert assess(log, None)["converged"] is None and assess([], ())["converged"] is True
    assert fit_convergence([1.0])["converged"] is None


def test_the_report_marks_rows_whose_training_did_not_converge():
    from benchmark.report.tables import UNCONVERGED_MARK, comparison_table, to_markdown
    from tests.test_report import record, runs_of

    def with_log(method, seed, losses):
        r = record(method=method, seed=seed)
        return dataclasses.replace(r, training_log=[{"epoch": i, "mse_image": v} for i, v in enumerate(losses)])

    settled = [1.0, 0.5, 0.41, 0.40, 0.40]  # last fifth: 0.40 -> 0.40, change 0
    falling = [1.0, 0.8, 0.6, 0.5, 0.4]  # last fifth: 0.5 -> 0.4, change 0.2 > 5 %
    # semantic-regression names mse_* as its main loss; these older-style records carry no convergence field
    runs = runs_of(with_log("semantic-regression", 0, settled), with_log("semantic-regression", 1, falling),
                   with_log("cca", 0, []), record(method="m-unregistered"))
    assert [r.converged for r in runs] == [True, False, True, None]
    table = comparison_table(runs[0].group, runs, "image->text", statistics=False)
    labels = [row.label for section in table.sections for row in section.rows]
    assert labels == ["cca", "m-unregistered", f"semantic-regression {UNCONVERGED_MARK}"]
    assert any("semantic-regression: 1 of 2 runs" in note for note in table.notes)
    assert f"| semantic-regression {UNCONVERGED_MARK} |" in to_markdown(table)


def test_without_a_budget_asked_for_a_gpu_run_gets_paper_and_a_cpu_run_cpu(monkeypatch):
    import benchmark.execution.plan as plan_module
    from benchmark.core.spec import default_budget

    assert (default_budget("cuda"), default_budget("cuda:1"), default_budget("cpu")) == ("paper", "paper", "cpu")
    cpu = grid_from_cli(None, "semantic-regression", "wikipedia", True, None, 0.05, "0", None)
    assert cpu.budget is None and [s.budget for s in plan_grid(cpu).specs] == ["cpu"]
    monkeypatch.setattr(plan_module, "resolve_device", lambda device: "cuda:0")  # no GPU here: pretend
    gpu = grid_from_cli(None, "semantic-regression", "wikipedia", True, None, 0.05, "0", "cuda")
    assert check_grid(gpu) == "cuda:0" and gpu.budget == "paper"
    asked = grid_from_cli(None, "semantic-regression", "wikipedia", True, None, 0.05, "0", "cuda", budget="cpu")
    check_grid(asked)
    assert asked.budget == "cpu"  # asked for: kept
