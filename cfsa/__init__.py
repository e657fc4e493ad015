"""CFSA: Correlated Features Synthesis and Alignment (Xu et al., SIGIR 2020).

- ``networks.py``: conditional generators G_m([c; z]), conditional critics D_m([x; c]) (with a closed-form
  input gradient for the penalty), regressors R_m into the class-embedding space, the modality adversary
  behind a gradient-reversal layer.
- ``losses.py``: WGAN-GP, regression and cycle consistency, alignment (``cmpm``, ``mmd``, ``coral``, ``none``).
- ``training.py``: one training step (5 critic updates, one coupled generator update, one regressor update).
- ``method.py``: the ``cfsa`` method and its registered variants ``cfsa-no-synthesis`` (no unseen-class
  synthesis), ``cfsa-no-cycle`` (no cycle term in the generators' objective), ``cfsa-no-align`` (no
  alignment term) and ``cfsa-paper-width`` (hidden width 4096).
- ``perf.py``: ``zsbench perf train``: step throughput and analytic matmul GFLOP/s against the measured peak.
"""
