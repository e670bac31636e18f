"""What `make bench` measures beyond the pipeline's own benchmark (run from the repo root)."""
