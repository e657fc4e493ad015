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


def test_a_method_offers_only_the_budgets_it_declares():
    with pytest.raises(ZSBenchError, match="dadn has no 'paper' training budget \\(its budgets: cpu\\)"):
        build_method("dadn", None, "paper")
    grid = grid_from_cli(None, "cfsa,dadn", "wikipedia", True, None, 0.05, "0", None, budget="paper")
    with pytest.raises(ZSBenchError, match="dadn has no 'paper' training budget"):
        check_grid(grid)
    with pytest.raises(ZSBenchError, match="--budget must be one of cpu, paper"):
        check_grid(grid_from_cli(None, "cfsa", "wikipedia", True, None, 0.05, "0", None, budget="gpu"))
    plan = plan_grid(grid_from_cli(None, "cfsa", "wikipedia", True, None, 0.05, "0", None, budget="paper"))
    assert [s.budget for s in plan.specs] == ["paper"] and plan.provenance["budget"] == "paper"


def test_the_record_and_the_report_keep_budgets_apart(tmp_path, tiny_sketch):
    from benchmark.report.records import group_runs, load_runs, sections_of

    store = ResultStore(tmp_path)
    quick = {"hidden": 8, "epochs": 1, "epoch_steps": 2, "batch_size": 8, "n_critic": 1}
    cpu = run_method("cfsa", tiny_sketch, 0, store, params=quick).record
    paper = run_method("cfsa", tiny_sketch, 0, store, params=quick, budget="paper").record
    assert cpu.budget is None and paper.budget == "paper" and paper.training_budget == "paper"
    (runs,) = group_runs(load_runs(tmp_path)).values()
    assert set(sections_of(runs)) == {"defaults", "defaults, paper training budget"}


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
