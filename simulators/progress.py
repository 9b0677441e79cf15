"""A small progress bar on stderr, measured in simulated device time."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta
from typing import TextIO

WIDTH = 30
REDRAW_S = 0.1


class Progress:
    """``[#########.....]  45%  5.4/12.0 h  1234 messages`` — drawn only when enabled.

    Enabled by default when the stream is a terminal, so logs and pipes stay clean.
    """

    def __init__(
        self,
        start: datetime,
        span: timedelta,
        label: str,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.start = start
        self.span_s = max(span.total_seconds(), 1e-9)
        self.label = label
        self._drawn_at = 0.0
        self._last = ""

    def update(self, at: datetime, note: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._drawn_at < REDRAW_S:
            self._last = self._render(at, note)
            return
        self._drawn_at = now
        self._draw(self._render(at, note))

    def _render(self, at: datetime, note: str) -> str:
        done = min(1.0, max(0.0, (at - self.start).total_seconds() / self.span_s))
        filled = round(done * WIDTH)
        hours = f"{(at - self.start).total_seconds() / 3600:.1f}/{self.span_s / 3600:.1f} h"
        return f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {done:4.0%}  {hours}  {note}"

    def _draw(self, line: str) -> None:
        self._last = line
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()

    def close(self, final_note: str = "") -> None:
        """Draw the last state (at 100 % when the run completed) and end the line."""
        if not self.enabled:
            return
        end = self.start + timedelta(seconds=self.span_s)
        self._draw(self._render(end, final_note) if final_note else self._last)
        self.stream.write("\n")
        self.stream.flush()
