"""A real RTSP camera on 127.0.0.1 for the stream tests: JPEG over RTP (RFC 2435) inside the RTSP TCP connection.

No RTSP server or FFmpeg CLI is installed here, so this one speaks just enough RTSP/1.0 (OPTIONS,
DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN) for FFmpeg's client, the one OpenCV uses. Media goes
interleaved over the RTSP connection (``RTP/AVP/TCP``, channel 0); a SETUP that asks for UDP gets
``461 Unsupported Transport``, as from a TCP-only camera, so a client must end up on TCP.

Frame ``seq`` is ``frames[seq % len(frames)]`` with ``seq`` drawn on it twice: as a binary code of
black and white cells along the top (for :func:`read_seq`, robust to JPEG) and as text (for people).
:meth:`RtspServer.render` rebuilds any served frame, so tests can measure PSNR of what they received.
``drop(seconds)`` closes every connection and the port, then listens on the same port again, like a
camera that reboots; ``freeze(seconds)`` keeps the connections but sends nothing, like a hung encoder.
"""

from __future__ import annotations

import itertools
import random
import socket
import socketserver
import struct
import threading
import time
import urllib.parse
from collections.abc import Sequence
from typing import BinaryIO

import cv2
import numpy as np

PAYLOAD_JPEG = 26  # static RTP payload type for JPEG, 90 kHz clock
CLOCK = 90_000
SEQ_BITS, CELL_W, CELL_H = 12, 32, 16  # 32x16 cells cover whole 4:2:0 MCUs: JPEG keeps them flat


def stamp(image: np.ndarray, seq: int) -> np.ndarray:
    """A copy of ``image`` with ``seq`` as a binary code along the top and as text below it."""
    out = image.copy()
    for bit in range(SEQ_BITS):
        out[:CELL_H, bit * CELL_W:(bit + 1) * CELL_W] = 255 if (seq >> (SEQ_BITS - 1 - bit)) & 1 else 0
    cv2.putText(out, f"#{seq}", (8, CELL_H + 34), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 5, cv2.LINE_AA)
    cv2.putText(out, f"#{seq}", (8, CELL_H + 34), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def read_seq(image: np.ndarray) -> int:
    """The ``seq`` a decoded frame carries (modulo ``2**SEQ_BITS``)."""
    cells = image[4:CELL_H - 4, : SEQ_BITS * CELL_W].reshape(CELL_H - 8, SEQ_BITS, CELL_W, -1)
    bits = cells[:, :, 4:-4].mean(axis=(0, 2, 3)) > 127
    return int("".join("1" if b else "0" for b in bits), 2)


def jpeg_to_rtp(jpeg: bytes, seq: int, timestamp: int, ssrc: int, mtu: int = 1400) -> list[bytes]:
    """RTP packets (RFC 2435, type 1 = 4:2:0, Q=255 with in-band tables) for one baseline JPEG.

    The receiver rebuilds the JPEG headers from the 8-byte JPEG header, so only the scan data
    travels, split at ``mtu`` bytes; the last packet carries the RTP marker bit.
    """
    width, height, qtables, scan = _split_jpeg(jpeg)
    packets, offset = [], 0
    while offset < len(scan) or not packets:
        header = struct.pack("!B3sBBBB", 0, offset.to_bytes(3, "big"), 1, 255, width // 8, height // 8)
        if offset == 0:
            header += struct.pack("!BBH", 0, 0, len(qtables)) + qtables
        chunk = scan[offset:offset + mtu - 12 - len(header)]
        offset += len(chunk)
        marker = 0x80 if offset >= len(scan) else 0
        rtp = struct.pack("!BBHII", 0x80, marker | PAYLOAD_JPEG, (seq + len(packets)) & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
        packets.append(rtp + header + chunk)
    return packets


def _split_jpeg(jpeg: bytes) -> tuple[int, int, bytes, bytes]:
    """Width, height, the luma+chroma quantisation tables and the entropy-coded scan of a JPEG."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    tables: dict[int, bytes] = {}
    pos, width, height = 2, 0, 0
    while pos + 4 <= len(jpeg):
        marker, length = jpeg[pos + 1], int.from_bytes(jpeg[pos + 2:pos + 4], "big")
        body = jpeg[pos + 4:pos + 2 + length]
        if marker == 0xDB:  # DQT: one or more [precision|id] + 64 zig-zag bytes
            for i in range(0, len(body), 65):
                if body[i] >> 4:
                    raise ValueError("16-bit quantisation tables cannot travel as RFC 2435 Q=255")
                tables[body[i] & 0x0F] = body[i + 1:i + 65]
        elif marker == 0xC0:  # baseline SOF: precision, height, width, components (id, sampling, table)
            height, width = int.from_bytes(body[1:3], "big"), int.from_bytes(body[3:5], "big")
            if body[5] != 3 or body[7] != 0x22 or body[10] != 0x11 or body[13] != 0x11:
                raise ValueError("RFC 2435 type 1 needs 4:2:0 YCbCr")
        elif marker in (0xC1, 0xC2, 0xDD):
            raise ValueError(f"JPEG marker 0xFF{marker:02X} (progressive or restart intervals) is not sent")
        elif marker == 0xDA:
            scan = jpeg[pos + 2 + length:]
            return width, height, tables[0] + tables[1], scan[:-2] if scan.endswith(b"\xff\xd9") else scan
        pos += 2 + length
    raise ValueError("JPEG has no scan")


class _TcpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True  # drop() listens again on the port its closed connections still occupy
    daemon_threads = True


class RtspServer:
    """Serves ``rtsp://127.0.0.1:PORT/live`` at ``fps``; ``seq`` counts frames sent over all connections."""

    def __init__(self, frames: Sequence[np.ndarray], fps: float = 25.0, quality: int = 90) -> None:
        self.frames, self.period, self.quality = list(frames), 1.0 / fps, quality
        self.seq = 0
        self.connections = 0
        #: The Transport header of every SETUP, to show which lower transport clients asked for.
        self.transports: list[str] = []
        self._seq_lock = threading.Lock()
        self._clients: set[socket.socket] = set()
        self._tcp: _TcpServer | None = None
        self._closing = False
        self._restart: threading.Timer | None = None
        self._frozen_until = 0.0
        self._listen(0)
        self.port: int = self._tcp.server_address[1]
        self.url = f"rtsp://127.0.0.1:{self.port}/live"

    def render(self, seq: int) -> np.ndarray:
        """Frame ``seq`` exactly as it was before JPEG encoding."""
        return stamp(self.frames[seq % len(self.frames)], seq)

    def _next_jpeg(self) -> bytes:
        with self._seq_lock:
            self.seq += 1
            seq = self.seq
        return cv2.imencode(".jpg", self.render(seq), [cv2.IMWRITE_JPEG_QUALITY, self.quality])[1].tobytes()

    def _sdp(self) -> bytes:
        fps = 1.0 / self.period
        return (
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=edgeglocal test camera\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
            f"a=control:*\r\nm=video 0 RTP/AVP {PAYLOAD_JPEG}\r\na=framerate:{fps:g}\r\na=control:track0\r\n"
        ).encode()

    def _listen(self, port: int) -> None:
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                server._clients.add(self.connection)
                try:
                    server._session(self.connection, self.rfile)
                except OSError:
                    pass  # the client went away, or drop() cut the connection
                finally:
                    server._clients.discard(self.connection)

        tcp = _TcpServer(("127.0.0.1", port), Handler)
        self._tcp = tcp
        threading.Thread(target=tcp.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def _session(self, conn: socket.socket, rfile: BinaryIO) -> None:
        """Answer requests until the client leaves; after PLAY a second thread sends the frames."""
        send_lock, playing = threading.Lock(), threading.Event()
        session = f"{random.getrandbits(32):08X}"
        with self._seq_lock:
            self.connections += 1
        try:
            while True:
                first = rfile.read(1)
                if not first:
                    return
                if first == b"$":  # the client's own interleaved RTCP (receiver reports): skip it
                    _, size = struct.unpack("!BH", rfile.read(3))
                    rfile.read(size)
                    continue
                lines = [(first + rfile.readline()).decode("latin-1").strip()]
                while lines[-1]:
                    lines.append(rfile.readline().decode("latin-1").strip())
                method, uri = lines[0].split()[:2]
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:-1])}
                rfile.read(int(headers.get("content-length", 0)))
                status, extra, body = self._answer(method, uri, headers, session)
                reply = f"RTSP/1.0 {status}\r\nCSeq: {headers.get('cseq', '0')}\r\n"
                reply += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                reply += f"Content-Length: {len(body)}\r\n\r\n" if body else "\r\n"
                with send_lock:
                    conn.sendall(reply.encode() + body)
                if method == "PLAY" and status.startswith("200") and not playing.is_set():
                    playing.set()
                    threading.Thread(target=self._send_frames, args=(conn, send_lock, playing), daemon=True).start()
                if method == "TEARDOWN":
                    return
        finally:
            playing.clear()

    def _answer(self, method: str, uri: str, headers: dict[str, str], session: str) -> tuple[str, dict[str, str], bytes]:
        """Status line, extra headers and body for one request."""
        if method == "OPTIONS":
            return "200 OK", {"Public": "OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN"}, b""
        if not urllib.parse.urlparse(uri).path.startswith("/live"):
            return "404 Not Found", {}, b""
        if method == "DESCRIBE":
            base = {"Content-Base": f"{self.url}/", "Content-Type": "application/sdp"}
            return "200 OK", base, self._sdp()
        if method == "SETUP":
            transport = headers.get("transport", "")
            self.transports.append(transport)
            if "RTP/AVP/TCP" not in transport.upper():
                return "461 Unsupported Transport", {}, b""
            return "200 OK", {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1", "Session": f"{session};timeout=60"}, b""
        if method in ("PLAY", "GET_PARAMETER", "TEARDOWN"):
            return "200 OK", {"Session": session, **({"Range": "npt=0.000-"} if method == "PLAY" else {})}, b""
        return "405 Method Not Allowed", {"Allow": "OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN"}, b""

    def _send_frames(self, conn: socket.socket, send_lock: threading.Lock, playing: threading.Event) -> None:
        """Paced frames as interleaved RTP on channel 0 until the session or the socket ends."""
        rtp_seq, ssrc, ts0 = random.getrandbits(16), random.getrandbits(32), random.getrandbits(32)
        due = time.monotonic()
        for n in itertools.count():
            if not playing.is_set() or self._closing:
                return
            if time.monotonic() < self._frozen_until:
                time.sleep(0.01)
                due = time.monotonic()
                continue
            packets = jpeg_to_rtp(self._next_jpeg(), rtp_seq, ts0 + round(n * self.period * CLOCK), ssrc)
            rtp_seq += len(packets)
            data = b"".join(b"$\x00" + len(p).to_bytes(2, "big") + p for p in packets)
            try:
                with send_lock:
                    conn.sendall(data)
            except OSError:
                return
            due += self.period
            time.sleep(max(0.0, due - time.monotonic()))

    def _stop(self) -> None:
        """Cut every connection and close the port, as a power cut would."""
        for conn in list(self._clients):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._tcp is not None:
            self._tcp.shutdown()
            self._tcp.server_close()
            self._tcp = None

    def freeze(self, seconds: float) -> None:
        """Stop sending frames for ``seconds`` but keep connections open, like a hung encoder."""
        self._frozen_until = time.monotonic() + seconds

    def drop(self, seconds: float) -> None:
        """Go away now (connections cut, port closed) and listen on the same port after ``seconds``."""
        self._stop()
        self._restart = threading.Timer(seconds, self._listen, args=(self.port,))
        self._restart.start()

    def __enter__(self) -> RtspServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        if self._restart is not None:
            self._restart.cancel()
            self._restart.join()
        self._stop()
