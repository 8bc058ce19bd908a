"""Capture: run streaming generation under torch.profiler across context lengths.

This package is the only part of tracekit (with its backends) that imports torch; the modules
``presets`` and ``annotations`` stay pure Python so reports can use them without torch.
"""
