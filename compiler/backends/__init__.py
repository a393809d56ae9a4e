"""Backends that compile edgefit's IR for other runtimes: TFLite (LiteRT) and Apache TVM."""
