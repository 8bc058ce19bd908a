try:
    from tracekit.cli import entry
except KeyboardInterrupt:  # Ctrl-C while the command line is still importing: nothing started yet
    raise SystemExit(130) from None

entry()
