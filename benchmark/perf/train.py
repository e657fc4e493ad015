"""``zsbench perf train``'s glue: a registered CFSA variant's step configuration, timed by :mod:`cfsa.perf`.

It lives in the harness, not in ``cfsa``, because it looks the method up in the registry and applies the
harness's thread and device defaults (a method package imports only the contract and the torch helpers).
"""

from __future__ import annotations

import torch

from benchmark.contract import ZSBenchError
from benchmark.core.env import DEFAULT_THREADS, resolve_device
from benchmark.registry import build_method
from cfsa.perf import TrainPerf, perf_train


def run_perf_train(method_name: str = "cfsa", hidden: int | None = None, batch_size: int | None = None,
                   dims: str = "4096,4096", embedding_dim: int = 50, steps: int = 5, device: str = "cpu",
                   threads: int | None = None, peak_size: int = 2048, rounds: int = 5) -> TrainPerf:
    """Time ``method_name``'s training step (``hidden`` and ``batch_size`` override the method's) on random
    features of the comma-separated sizes ``dims``, with ``threads`` torch threads (default: as ``zsbench run``)."""
    from cfsa.method import CFSA

    name, method = build_method(method_name, {k: v for k, v in (("hidden", hidden), ("batch_size", batch_size))
                                              if v is not None})
    if not isinstance(method, CFSA):
        raise ZSBenchError(f"perf train times CFSA variants; {name!r} is a {type(method).__name__}")
    try:
        feature_dims = {f"modality{i}": int(d) for i, d in enumerate(dims.split(","))}
    except ValueError:
        raise ZSBenchError(f"--dims must be comma-separated integers, got {dims!r}") from None
    if len(feature_dims) < 2 or min(feature_dims.values()) < 1:
        raise ZSBenchError(f"--dims needs two or more positive sizes, got {dims!r}")
    torch.set_num_threads(DEFAULT_THREADS if threads is None else threads)
    return perf_train(method.hidden, method.batch_size, feature_dims, embedding_dim, steps=steps,
                      device=resolve_device(device), peak_size=peak_size, config=method.step_config(), rounds=rounds)
