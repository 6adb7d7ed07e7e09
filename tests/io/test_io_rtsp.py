"""open_source and ``edgeglocal run`` on a real RTSP camera (tests/io/rtsp_server.py): JPEG over RTP in RTSP/TCP."""

from __future__ import annotations

import re
import socket
import time
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeglocal.cli.app import app
from edgeglocal.errors import SourceError
from edgeglocal.io.sources import Reconnect, open_source
from rtsp_server import RtspServer, read_seq


def test_rtsp_stream_delivers_the_frames_the_camera_sent(rtsp_server: RtspServer, monkeypatch):
    """FFmpeg must rebuild each JPEG from RTP fragments: full size, in order, close to what was sent."""
    # With this variable unset OpenCV passes FFmpeg rtsp_flags=prefer_tcp, which the last assert checks.
    monkeypatch.delenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", raising=False)
    with open_source(rtsp_server.url, max_frames=12) as src:
        assert src.is_live and src.fps == pytest.approx(25.0)  # from the SDP's a=framerate
        frames = list(src)
    assert len(frames) == 12
    assert all(f.image.shape == (576, 768, 3) and f.source == rtsp_server.url for f in frames)
    seqs = [read_seq(f.image) for f in frames]
    assert all(b > a for a, b in pairwise(seqs))
    psnr = [cv2.PSNR(f.image, rtsp_server.render(s)) for f, s in zip(frames, seqs)]
    assert min(psnr) > 25  # measured ~41 dB at JPEG quality 90; swapping the two quantisation tables gives 22
    # The first SETUP already asks for media inside the RTSP connection (no UDP attempt, no 461 round trip).
    assert "RTP/AVP/TCP" in rtsp_server.transports[0]


def test_rtsp_live_source_delivers_fresh_frames_to_a_slow_consumer(rtsp_server: RtspServer):
    """A consumer slower than the camera must get the newest frame each time, never a backlog."""
    seqs, lags = [], []
    with open_source(rtsp_server.url, max_frames=5) as src:
        for frame in src:
            seqs.append(read_seq(frame.image))
            lags.append(rtsp_server.seq - seqs[-1])
            time.sleep(0.4)  # ~10 frames arrive meanwhile at 25 fps
    assert src.dropped >= 4
    assert min(np.diff(seqs)) >= 5
    assert max(lags[1:]) <= 5  # measured 0-1 (a backlog would be 10+); the first frame may be from the probe


def test_rtsp_stream_reconnects_after_the_server_restarts(rtsp_server: RtspServer):
    """A camera that reboots (connection cut, port closed for 1 s, back on the same port) is reopened."""
    policy = Reconnect(attempts=10, initial=0.2, max_delay=0.5, timeout_ms=2000)
    seqs: list[int] = []
    with open_source(rtsp_server.url, reconnect=policy) as src:
        for frame in src:
            seqs.append(read_seq(frame.image))
            if len(seqs) == 5:
                rtsp_server.drop(1.0)
                before, t_drop = rtsp_server.seq, time.monotonic()  # later frames come from a new connection
            if len(seqs) > 5 and seqs[-1] > before:
                back_after = time.monotonic() - t_drop
                break
        assert src.reconnects >= 1
    assert rtsp_server.connections >= 2
    assert all(b > a for a, b in pairwise(seqs))  # in order across the reconnect
    assert 1.0 <= back_after < 6.0  # measured ~2 s: back-off up to the restart, then FFmpeg's probe


def test_rtsp_stream_that_stalls_is_reopened_after_the_read_timeout(rtsp_server: RtspServer):
    """A hung camera keeps its TCP connection open but sends nothing; the read timeout must end the wait."""
    policy = Reconnect(attempts=10, initial=0.2, max_delay=0.5, timeout_ms=1000)
    seqs: list[int] = []
    stalled_at = None
    with open_source(rtsp_server.url, reconnect=policy) as src:
        for frame in src:
            seqs.append(read_seq(frame.image))
            if stalled_at is None and rtsp_server.seq - seqs[-1] <= 1:  # past FFmpeg's probe backlog
                rtsp_server.freeze(1.5)
                stalled_at, t_freeze = rtsp_server.seq, time.monotonic()
            if stalled_at is not None and seqs[-1] > stalled_at:
                back_after = time.monotonic() - t_freeze
                break
        assert src.reconnects >= 1
    assert rtsp_server.connections >= 2
    assert all(b > a for a, b in pairwise(seqs))
    assert 1.5 <= back_after < 6.0  # measured ~2.3 s: the stall, then a reopen after the 1 s read timeout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rtsp_failures_name_the_url_and_stop_within_the_open_timeout(rtsp_server: RtspServer):
    """A refused port, a server that never answers and an unknown path each fail fast with one sentence."""
    silent = socket.create_server(("127.0.0.1", 0))  # accepts the connection, never replies
    urls = [
        f"rtsp://127.0.0.1:{_free_port()}/live",
        f"rtsp://127.0.0.1:{silent.getsockname()[1]}/live",
        rtsp_server.url.replace("/live", "/nothing-here"),
    ]
    try:
        for url in urls:
            t0 = time.monotonic()
            with pytest.raises(SourceError) as failure:
                open_source(url, reconnect=Reconnect(timeout_ms=1000))
            assert time.monotonic() - t0 < 3.0, url
            message = str(failure.value)
            assert re.fullmatch(rf"Stream {re.escape(url)} could not be opened: [^.]*\.", message), message
    finally:
        silent.close()


def test_cli_run_dehaze_on_rtsp_writes_a_playable_video(rtsp_server: RtspServer, tmp_path: Path):
    """The user's path end to end: ``edgeglocal run`` on an rtsp:// URL saves a video named after it."""
    result = CliRunner().invoke(app, ["run", "--task", "dehaze", "--source", rtsp_server.url, "--max-frames", "8",
                                      "--save", "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Processed 8 frames" in result.output
    video = tmp_path / "dehaze" / "exp" / "live.mp4"
    cap = cv2.VideoCapture(str(video))
    fps, images = cap.get(cv2.CAP_PROP_FPS), []
    while (decoded := cap.read())[0]:
        images.append(decoded[1])
    cap.release()
    assert len(images) == 8 and fps == pytest.approx(25.0)
    assert all(image.shape == (576, 768, 3) for image in images)
    # Dehazing keeps the code cells black and white: the video holds the camera's frames, in order.
    seqs = [read_seq(image) for image in images]
    assert all(b > a for a, b in pairwise(seqs)) and 1 <= seqs[0] and seqs[-1] <= rtsp_server.seq
