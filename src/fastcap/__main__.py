"""``python -m fastcap``: the command line, as the ``fastcap`` console script runs it (for a
machine where the script's directory is not on PATH)."""

from fastcap.cli import run

if __name__ == "__main__":
    run()
