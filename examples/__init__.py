"""Examples built on Tidings; importable from the repo root (``python -m examples.shop.run``)."""
