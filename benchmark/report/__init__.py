"""Reports over the run records: comparison tables, the paper's tables, t-SNE maps, PR curves, metric variants.

Entry point: :func:`benchmark.report.build.build_report` (the ``zsbench report`` command).
"""
