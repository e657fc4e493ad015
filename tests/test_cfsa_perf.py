"""``zsbench perf train``: the analytic FLOP count against the products torch really runs, and the command."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils._python_dispatch import TorchDispatchMode

from benchmark.cli import cli
from benchmark.contract import ZSBenchError
from cfsa.method import CFSA
from cfsa.perf import measure_matmul_peak, perf_train, step_flops
from cfsa.training import CFSANetworks, CFSATrainer

aten = torch.ops.aten


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny tensors: on a loaded machine torch's thread pool spends far longer waiting than computing.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class MatmulFlops(TorchDispatchMode):
    """Counts 2mkn for every mm / addmm that reaches the dispatcher (forward, backward and double backward)."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = func.overloadpacket
        if packet in (aten.mm, aten.addmm):
            a, b = (args[0], args[1]) if packet is aten.mm else (args[1], args[2])
            self.total += 2 * a.shape[0] * a.shape[1] * b.shape[1]
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("config", [
    CFSA(batch_size=16).step_config(),
    CFSA(batch_size=16, cycle_weight=0.0).step_config(),
    CFSA(batch_size=16, synthesize_unseen=True).step_config(),
    CFSA(batch_size=16, modality_adversary=False).step_config(),
    CFSA(batch_size=16, alignment="none", synthetic_weight=0.0).step_config(),
    CFSA(batch_size=16, synthesis=False).step_config(),
    CFSA(batch_size=16, regressor_steps=3).step_config(),
], ids=["cfsa", "no-cycle", "unseen-synthesis", "no-adversary", "no-synthetic-rows", "no-synthesis",
     "3-regressor-steps"])
def test_analytic_flops_match_the_products_torch_runs(config):
    dims, e, h = {"a": 300, "b": 120}, 20, 64
    nets = CFSANetworks(dims, e, e, h, config.modality_adversary)
    features = {m: torch.randn(40, d) for m, d in dims.items()}
    labels = {m: torch.randint(0, 8, (40,)) for m in dims}
    trainer = CFSATrainer(nets, features, labels, torch.randn(10, e), np.arange(8), np.arange(8, 10), config, 0)
    with MatmulFlops() as counted:
        trainer.step()
    analytic = step_flops(dims, e, e, h, config)
    # Every product in this step is a linear layer's or the cmpm logits': the two counts agree.
    assert analytic <= counted.total
    assert analytic == pytest.approx(counted.total, rel=0.01)


def test_perf_train_reports_consistent_figures():
    r = perf_train(hidden=16, batch_size=8, feature_dims={"a": 32, "b": 24}, embedding_dim=6, n_classes=10,
                   steps=2, peak_size=128, rounds=3)
    config = CFSA().step_config()
    assert r.samples_per_step == (config.n_critic + config.regressor_steps) * 8 * 2 and r.seconds_per_step > 0 and r.peak_gflops > 0
    assert r.achieved_gflops == pytest.approx(r.gflop_per_step / r.seconds_per_step)
    # Three rounds, each against its own peak; the reported figures are the median round's.
    assert len(r.fractions) == 3 and list(r.fractions) == sorted(r.fractions)
    assert r.fraction_of_peak == pytest.approx(r.fractions[1])
    with pytest.raises(ZSBenchError, match="rounds"):
        perf_train(hidden=16, batch_size=8, feature_dims={"a": 32, "b": 24}, rounds=0)
    assert measure_matmul_peak(64, repeats=2) > 0


def test_perf_train_command_prints_the_table():
    result = CliRunner().invoke(cli, ["perf", "train", "--hidden", "16", "--batch-size", "8", "--dims", "32,24",
                                      "--embedding-dim", "6", "--steps", "1", "--rounds", "2", "--peak-size", "128"])
    assert result.exit_code == 0, result.output
    assert "of peak" in result.output and "width 16" in result.output and "median of 2 rounds" in result.output
    assert "(1 thread)" in result.output  # one thread by default, as zsbench run trains
