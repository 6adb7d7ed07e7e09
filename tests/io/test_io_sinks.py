"""Sinks on real files: mp4 at the source fps, JSON lines with numpy values, image names, permissions."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from edgeglocal.errors import SinkError
from edgeglocal.io.frame import Frame
from edgeglocal.io.sinks import ImageSink, JsonlSink, VideoSink, WindowSink


def _frame(i: int, path: str | None = None) -> Frame:
    image = np.full((48, 64, 3), 10 * i, np.uint8)
    return Frame(image=image, index=i, timestamp=i / 12.5, source="cam/left.mp4", path=path, fps=12.5)


def test_video_sink_writes_fps_and_frames_and_normal_permissions(tmp_path):
    sink = VideoSink(tmp_path / "out.mp4", fps=12.5)
    for i in range(6):
        f = _frame(i)
        sink.write(f, f.image if i != 3 else cv2.resize(f.image, (32, 24)), {})  # odd size is resized
    assert not (tmp_path / "out.mp4").exists()  # only the temporary name until close
    sink.close()
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.5)
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    assert len(frames) == 6 and frames[0].shape == (48, 64, 3)
    assert [round(f.mean() / 10) for f in frames] == [0, 1, 2, 3, 4, 5]  # lossy, but in order
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out.mp4").stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_jsonl_sink_serialises_numpy_and_flushes(tmp_path):
    sink = JsonlSink(tmp_path / "r.jsonl")
    sink.write(_frame(2), None, {"score": np.float32(0.25), "boxes": np.arange(4).reshape(1, 4)})
    tmp = next(tmp_path.glob(".r.*.jsonl"))
    assert tmp.read_text().count("\n") == 1  # readable while the run goes on
    sink.close()
    assert json.loads((tmp_path / "r.jsonl").read_text()) == {
        "source": "cam/left.mp4", "frame": 2, "timestamp": 0.16, "score": 0.25, "boxes": [[0, 1, 2, 3]]}


def test_image_sink_names(tmp_path):
    sink = ImageSink(tmp_path)
    sink.write(_frame(1, path="/data/in/photo.png"), _frame(1).image, {})
    sink.write(_frame(7), _frame(7).image, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["left_000007.jpg", "photo.png"]
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "photo.png")), _frame(1).image)


def test_window_sink_without_display_is_a_sink_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(SinkError, match="needs a display"):
        WindowSink()
