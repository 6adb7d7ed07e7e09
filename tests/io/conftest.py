from pathlib import Path

import pytest

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


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
def sobel_model(tmp_path_factory) -> Path:
    from edge_task import build_sobel_bundle

    return build_sobel_bundle(tmp_path_factory.mktemp("sobel"))
