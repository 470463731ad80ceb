"""One command that measures the book's claims on this machine: `python -m benchmarks` (see run.py)."""
