"""Compression passes over an nn.Module: bottleneck, pruning, codebook, int8, and their training loop."""
