"""``python -m benchmark.cli``: the ``zsbench`` command."""

from benchmark.cli import main

if __name__ == "__main__":
    main()
