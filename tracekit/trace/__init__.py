"""A torch.profiler / Kineto Chrome trace as a compact columnar model (``model``, built by
``build``, linked by ``links``, nested by ``tree``), and its reader, ``read`` (``load_trace``)."""
