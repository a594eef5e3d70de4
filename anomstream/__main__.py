"""`python -m anomstream`: the same program as the `anomstream` console script."""

from anomstream.cli import run

if __name__ == "__main__":
    run()
