"""Ground floor: the data types every part shares (dataset, split, run record, run specification), the
process environment, the results store, the evaluation protocol and statistics. Imports nothing above it."""
