"""A real HTTP MJPEG camera on 127.0.0.1 for the stream tests: multipart/x-mixed-replace JPEG frames.

Each frame is a flat grey image whose intensity encodes its sequence number (``seq % 200 + 20``), so
tests can tell frames apart after a drop. ``drop(seconds)`` cuts every connection and refuses new
ones for a while, like a camera that reboots.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = b"edgeglocalframe"


def frame_value(seq: int) -> int:
    return seq % 200 + 20


class MjpegServer:
    def __init__(self, size: tuple[int, int] = (64, 48), fps: float = 25.0) -> None:
        self.size, self.period = size, 1.0 / fps
        self.seq = 0
        self.down_until = 0.0
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if time.monotonic() < server.down_until:
                    self.send_error(503, "rebooting")
                    return
                server.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
                self.end_headers()
                try:
                    while time.monotonic() >= server.down_until and not server.closing:
                        jpeg = server.next_jpeg()
                        self.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n")
                        self.wfile.write(f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                        self.wfile.flush()
                        time.sleep(server.period)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.closing = False
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/video.mjpg"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def next_jpeg(self) -> bytes:
        w, h = self.size
        self.seq += 1
        image = np.full((h, w, 3), frame_value(self.seq), np.uint8)
        return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()

    def drop(self, seconds: float) -> None:
        """Close the stream now and answer 503 for ``seconds``."""
        self.down_until = time.monotonic() + seconds

    def __enter__(self) -> "MjpegServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing = True
        self.httpd.shutdown()
        self.httpd.server_close()
