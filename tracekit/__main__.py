"""The ``tracekit`` console script (``tracekit.__main__:main``) and ``python -m tracekit``."""


def main() -> None:
    try:
        from tracekit.cli import entry
    except KeyboardInterrupt:  # Ctrl-C while the command line is still importing: nothing started yet
        raise SystemExit(130) from None
    entry()


if __name__ == "__main__":
    main()
