"""End-to-end flows of the whole pipeline, run as real processes (demo, tests, benchmark)."""
