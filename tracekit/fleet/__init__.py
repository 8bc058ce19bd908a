"""Running the analysis of many traces: in-process, or as Dask tasks (``run``, ``cluster``)."""
