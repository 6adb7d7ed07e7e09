from pathlib import Path

import pytest

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
SAMPLE_CLIP = Path(__file__).resolve().parents[2] / "samples" / "media"


@pytest.fixture(scope="session")
def calib_video() -> Path:
    """Real frames to calibrate on: opencv-doc's vtest.avi, or the clip shipped in samples/media."""
    for candidate in [OPENCV_DATA / "vtest.avi", *sorted(SAMPLE_CLIP.glob("*.mp4")), *sorted(SAMPLE_CLIP.glob("*.avi"))]:
        if candidate.exists():
            return candidate
    pytest.skip("no real video: install opencv-doc or keep samples/media")
