from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pytest

if TYPE_CHECKING:
    from rtsp_server import RtspServer

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
SAMPLE_CLIP = Path(__file__).resolve().parents[2] / "samples" / "media" / "vtest_80.mp4"


@pytest.fixture(scope="session")
def vtest() -> Path:
    """OpenCV's pedestrian clip (768x576, 10 fps, 795 frames)."""
    path = OPENCV_DATA / "vtest.avi"
    if not path.exists():
        pytest.skip(f"{path} is missing (install the opencv-doc package for the sample media)")
    return path


@pytest.fixture
def mjpeg_server():
    from mjpeg_server import MjpegServer

    with MjpegServer() as server:
        yield server


@pytest.fixture(scope="session")
def clip_frames() -> list[np.ndarray]:
    """The first 40 frames (768x576) of the repository's sample clip: real pictures for the test cameras."""
    cap = cv2.VideoCapture(str(SAMPLE_CLIP))
    frames = [cap.read()[1] for _ in range(40)]
    cap.release()
    assert all(f is not None for f in frames), f"{SAMPLE_CLIP} did not decode"
    return frames


@pytest.fixture
def rtsp_server(clip_frames: list[np.ndarray]) -> Iterator[RtspServer]:
    """A local RTSP camera (tests/io/rtsp_server.py) looping over the sample clip at 25 fps."""
    if not cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
        pytest.skip("this OpenCV build has no FFmpeg backend, which is what reads rtsp:// URLs")
    from rtsp_server import RtspServer

    with RtspServer(clip_frames) as server:
        yield server


@pytest.fixture(scope="session")
def sobel_model(tmp_path_factory) -> Path:
    from edge_task import build_sobel_bundle

    return build_sobel_bundle(tmp_path_factory.mktemp("sobel"))
