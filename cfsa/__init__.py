"""CFSA: Correlated Features Synthesis and Alignment (Xu et al., SIGIR 2020).

- ``networks.py``: conditional generators G_m([c; z]), conditional critics D_m([x; c]) (with a closed-form
  input gradient for the penalty), regressors R_m into the class-embedding space, the modality adversary
  behind a gradient-reversal layer.
- ``losses.py``: WGAN-GP, regression and cycle consistency, alignment (``cmpm``, ``mmd``, ``coral``, ``none``).
- ``training.py``: one training iteration (``n_critic`` critic updates and one coupled generator update, then
  ``regressor_steps`` regressor updates with their own optimiser).
- ``method.py``: the ``cfsa`` method, its defaults with the validation figures that chose them, and its
  registered variants, each removing one thing: ``cfsa-no-synthesis`` (no GAN, no synthetic feature),
  ``cfsa-no-unseen-synthesis`` (synthesis of seen classes only), ``cfsa-no-cycle`` (no cycle term),
  ``cfsa-no-align`` (no alignment term); ``cfsa-paper-width`` is hidden width 4096, for a GPU.
- ``perf.py``: ``zsbench perf train``: step throughput and analytic matmul GFLOP/s against the measured peak.
"""
