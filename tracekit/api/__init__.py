"""The Python API: ``tracekit.analyze``, ``tracekit.load_run`` and the tables they return."""
