"""open_source on real media: video files, image folders and globs, cameras, a local MJPEG server."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeglocal.errors import InputError, SourceError
from edgeglocal.io.sources import Reconnect, open_source
from mjpeg_server import frame_value


def test_video_file_stride_and_max_frames(vtest):
    with open_source(str(vtest), vid_stride=3, max_frames=10) as src:
        assert not src.is_live and src.fps == pytest.approx(10.0) and src.total == 10
        frames = list(src)
    assert [f.index for f in frames] == list(range(0, 30, 3))
    assert frames[4].timestamp == pytest.approx(1.2)
    assert all(f.image.shape == (576, 768, 3) and f.source == str(vtest) for f in frames)
    # The strided frames are the file's own frames 0, 3, 6...: compare with a plain decode.
    cap = cv2.VideoCapture(str(vtest))
    plain = [cap.read()[1] for _ in range(7)]
    cap.release()
    np.testing.assert_array_equal(frames[2].image, plain[6])


def test_whole_video_total_matches_frames_delivered(vtest):
    with open_source(str(vtest), vid_stride=100) as src:
        frames = list(src)
    assert len(frames) == src.total == 8  # ceil(795 / 100)


def _write_images(folder: Path, n: int) -> list[np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(n):
        img = np.full((20, 30, 3), 40 * i, np.uint8)
        img[0, 0] = (1, 2, 3)
        cv2.imwrite(str(folder / f"img_{i:02d}.png"), img)
        images.append(img)
    (folder / "notes.txt").write_text("not an image")
    return images


def test_image_folder_and_glob(tmp_path):
    images = _write_images(tmp_path / "pics", 4)
    with open_source(str(tmp_path / "pics")) as src:
        frames = list(src)
    assert src.total == 4 and [Path(f.path).name for f in frames] == [f"img_{i:02d}.png" for i in range(4)]
    for frame, img in zip(frames, images):
        np.testing.assert_array_equal(frame.image, img)
    with open_source(str(tmp_path / "pics" / "img_0[13].png")) as src:
        assert [Path(f.path).name for f in src] == ["img_01.png", "img_03.png"]
    with open_source(str(tmp_path / "pics"), max_frames=2) as src:
        assert len(list(src)) == 2


def test_bad_sources_fail_with_one_sentence(tmp_path):
    with pytest.raises(SourceError, match=r"^Camera 37 could not be opened: no such device"):
        open_source("37")
    with pytest.raises(SourceError, match="does not exist; expected a camera index"):
        open_source(str(tmp_path / "missing.mp4"))
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(SourceError, match="broken.mp4 could not be opened"):
        open_source(str(tmp_path / "broken.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="matches no images"):
        open_source(str(tmp_path / "empty"))
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(SourceError, match="bad.jpg could not be decoded"):
        list(open_source(str(tmp_path / "bad.jpg")))
    with pytest.raises(InputError, match="vid_stride"):
        open_source(str(tmp_path), vid_stride=0)
    with pytest.raises(SourceError, match="could not be opened: no video came back"):
        open_source("http://127.0.0.1:9/none.mjpg", reconnect=Reconnect(timeout_ms=1000))


def test_http_mjpeg_stream(mjpeg_server):
    with open_source(mjpeg_server.url, max_frames=8) as src:
        assert src.is_live
        frames = list(src)
    assert len(frames) == 8
    values = [int(f.image[10, 10, 0]) for f in frames]
    assert all(abs(v - frame_value(i + 1)) <= 2 for v, i in zip(values, [f.index for f in frames]))
    assert values == sorted(values)


def test_live_source_keeps_only_newest_frame(mjpeg_server):
    with open_source(mjpeg_server.url, max_frames=5) as src:
        indices = []
        for frame in src:
            indices.append(frame.index)
            time.sleep(0.4)  # a slow consumer: ~10 frames arrive meanwhile at 25 fps
    assert src.dropped >= 4
    assert min(np.diff(indices)) >= 2  # never a stale backlog: each frame is several newer


def test_dropped_stream_reconnects_and_continues(mjpeg_server):
    policy = Reconnect(attempts=10, initial=0.2, max_delay=0.5, timeout_ms=2000)
    seen = []
    with open_source(mjpeg_server.url, reconnect=policy) as src:
        for frame in src:
            seen.append(int(frame.image[10, 10, 0]))
            if len(seen) == 5:
                before = mjpeg_server.seq
                mjpeg_server.drop(1.0)
            if len(seen) == 5 + 10:
                break
        assert src.reconnects >= 1
    after = seen[5:]
    assert len(after) == 10 and mjpeg_server.connections >= 2
    assert max(after) >= frame_value(before + 3)  # frames produced after the server came back


def test_stream_that_never_returns_ends_with_source_error(mjpeg_server):
    policy = Reconnect(attempts=2, initial=0.1, max_delay=0.1, timeout_ms=1000)
    with open_source(mjpeg_server.url, reconnect=policy) as src:
        with pytest.raises(SourceError, match="dropped and did not come back after 2 reconnect attempts"):
            for i, _ in enumerate(src):
                if i == 2:
                    mjpeg_server.drop(60)


def test_streams_file_tags_frames_with_their_source(tmp_path, vtest):
    _write_images(tmp_path / "pics", 3)
    listing = tmp_path / "cams.streams"
    listing.write_text(f"# two sources\n{vtest}\n\n{tmp_path / 'pics'}\n")
    with open_source(str(listing), max_frames=4) as src:
        assert src.total == 4 + 3
        frames = list(src)
    by_source = {}
    for f in frames:
        by_source.setdefault(f.source, []).append(f.index)
    assert by_source == {str(vtest): [0, 1, 2, 3], str(tmp_path / "pics"): [0, 1, 2]}


def test_file_urls_are_read_to_the_end_not_as_live_streams():
    from range_server import RangeServer

    media = Path(__file__).resolve().parents[2] / "samples" / "media"
    with RangeServer(media) as server:
        with open_source(f"{server.base}/vtest_80.mp4", vid_stride=10) as src:
            assert not src.is_live and src.total == 8
            frames = list(src)
        assert [f.index for f in frames] == list(range(0, 80, 10))
        with open_source(f"{server.base}/aero1.jpg") as src:
            images = list(src)
    assert len(images) == 1
    local = cv2.imread(str(media / "aero1.jpg")).astype(np.float32)
    assert np.abs(images[0].image - local).mean() < 3  # FFmpeg's JPEG decoder rounds a little differently
