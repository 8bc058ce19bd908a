"""Loading torch.profiler / Kineto Chrome-trace files into a compact typed model."""
