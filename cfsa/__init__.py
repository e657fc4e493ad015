"""CFSA: Correlated Features Synthesis and Alignment (Xu et al., SIGIR 2020).

- ``networks.py``: conditional generators G_m([c; z]), conditional critics D_m([x; c]) (with a closed-form
  input gradient for the penalty), regressors R_m into the class-embedding space, the modality adversary
  behind a gradient-reversal layer.
- ``losses.py``: WGAN-GP, regression and cycle consistency, alignment (``cmpm``, ``mmd``, ``coral``, ``none``).
- ``training.py``: one training iteration (``n_critic`` critic updates and one coupled generator update, then
  ``regressor_steps`` regressor updates with their own optimiser).
- ``method.py``: the ``cfsa`` method, its defaults (the paper family's released objective, each value with its
  source line), its ``cpu`` and ``paper`` training budgets, and its registered variants: the ablations, each
  removing one thing (``cfsa-no-synthesis``: no GAN, no synthetic feature; ``cfsa-no-cycle``: no cycle term;
  ``cfsa-no-align``: no alignment term; ``cfsa-no-adversary``: no modality adversary), and
  ``cfsa-unseen-synthesis`` (also synthesise the unseen classes from their embeddings).
- ``perf.py``: step throughput and analytic matmul GFLOP/s against the measured peak (``zsbench perf train``).
"""
