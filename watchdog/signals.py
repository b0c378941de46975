"""What signals ask of the runner's main loop: stop (SIGTERM, SIGINT) or reload (SIGHUP).

A handler only sets flags and wakes the loop; the loop does the work, outside the handler."""

from __future__ import annotations

import signal
import threading


class Requests:
    """The stop and reload flags, and the event that wakes the main loop for them."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.wake = threading.Event()

    def install(self) -> None:
        """Handle SIGTERM and SIGINT (stop) and SIGHUP (reload); main thread only."""
        def stop(signum, frame):
            self.stop.set()
            self.wake.set()

        def reload(signum, frame):
            self.reload.set()
            self.wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)
