"""A real X server (Xvfb) for the window tests, with xdotool to find windows and press keys and
xwd to read back what a window shows."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import time

import numpy as np

TOOLS = ("Xvfb", "xdotool", "xwd")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


class XDisplay:
    """``with XDisplay() as x:`` runs Xvfb on a display number it picks itself (``x.name``, e.g. ":3")."""

    def __init__(self, width: int = 1280, height: int = 1024) -> None:
        read_fd, write_fd = os.pipe()
        self._server = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(write_fd)
        with os.fdopen(read_fd) as reader:  # Xvfb writes the display number once it accepts clients
            self.name = f":{reader.readline().strip()}"

    def __enter__(self) -> "XDisplay":
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.terminate()
        self._server.wait(timeout=10)

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, capture_output=True, env={**os.environ, "DISPLAY": self.name}, timeout=10)

    def window(self, title: str, timeout: float = 5.0) -> str | None:
        """The id of the visible window called ``title``, waiting up to ``timeout`` s for it."""
        end = time.monotonic() + timeout
        while True:
            ids = self._run("xdotool", "search", "--onlyvisible", "--name", f"^{re.escape(title)}$").stdout.split()
            if ids or time.monotonic() > end:
                return ids[0].decode() if ids else None
            time.sleep(0.05)

    def press(self, window: str, key: str) -> None:
        self._run("xdotool", "windowfocus", "--sync", window)
        self._run("xdotool", "key", key)

    def capture(self, window: str) -> np.ndarray:
        """What ``window`` shows, as a BGR uint8 image (24-bit TrueColor, 32 bits per pixel)."""
        raw = self._run("xwd", "-id", window, "-silent").stdout
        header = struct.unpack(">25I", raw[:100])
        header_size, width, height, bits_per_pixel, bytes_per_line, ncolors = (
            header[0], header[4], header[5], header[11], header[12], header[19])
        assert bits_per_pixel == 32 and header[7] == 0, "expected a little-endian 32-bit TrueColor dump"
        start = header_size + 12 * ncolors
        rows = np.frombuffer(raw, np.uint8, bytes_per_line * height, start).reshape(height, bytes_per_line)
        return rows[:, : width * 4].reshape(height, width, 4)[..., :3].copy()
