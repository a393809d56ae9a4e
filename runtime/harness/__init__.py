"""The validation harness: accuracy, latency and energy of a compiled model against its reference."""
