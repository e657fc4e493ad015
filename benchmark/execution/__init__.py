"""The execution layer: a grid or a tuning expands to run specifications, which one executor runs."""
