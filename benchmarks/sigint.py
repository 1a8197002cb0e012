"""A pytest plugin for scripts/gpu_check.sh (``-p benchmarks.sigint``): SIGINT raises KeyboardInterrupt,
so that ``timeout -s INT`` stops the test run with its summary and junit file written, even where
the process started with SIGINT ignored (a background job of a non-interactive shell)."""

import signal

signal.signal(signal.SIGINT, signal.default_int_handler)
