"""The threaded pipeline with a real ONNX task on real media: order, outputs, stats, early stop."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_task import EdgeTask, count_frames, opencv_edges
from edgeglocal.errors import InputError
from edgeglocal.io.pipeline import run
from edgeglocal.io.sources import Source, open_source


def test_video_run_saves_video_and_jsonl_with_real_numbers(vtest, sobel_model, tmp_path):
    task = EdgeTask(str(sobel_model), threshold=0.3)
    pipe = run(task, str(vtest), save=True, save_json=True, vid_stride=2, max_frames=9, project=tmp_path)
    results = list(pipe)
    assert pipe.run_dir == tmp_path / "edges" / "exp"
    assert len(results) == 9 and task.postprocessed == list(range(0, 18, 2)) and task.closed == 1
    records = [json.loads(line) for line in (pipe.run_dir / "results.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(0, 18, 2))
    cap = cv2.VideoCapture(str(vtest))
    for _ in range(4):
        cap.read()
    _, frame4 = cap.read()
    expected = opencv_edges(frame4)
    assert records[2]["edge_mean"] == pytest.approx(float(expected.mean()), rel=1e-4)
    assert records[2]["strong"] == pytest.approx(float((expected > 0.3).mean()), abs=1e-4)
    video = pipe.run_dir / "vtest.mp4"
    assert pipe.outputs == [video, pipe.run_dir / "results.jsonl"]
    assert count_frames(video) == 9
    assert not list(pipe.run_dir.glob(".*"))  # no temporary files left behind


def test_run_folders_are_numbered(vtest, sobel_model, tmp_path):
    dirs = []
    for kwargs in ({}, {}, {"exist_ok": True}, {"name": "night"}):
        pipe = run(EdgeTask(str(sobel_model)), str(vtest), save_json=True, max_frames=1, project=tmp_path, **kwargs)
        list(pipe)
        dirs.append(pipe.run_dir.relative_to(tmp_path).as_posix())
    assert dirs == ["edges/exp", "edges/exp2", "edges/exp", "edges/night"]


def test_image_folder_keeps_names(tmp_path, sobel_model):
    src = tmp_path / "in"
    src.mkdir()
    for i, size in enumerate([(40, 60), (33, 17)]):
        img = np.random.default_rng(i).integers(0, 255, (*size, 3), dtype=np.uint8)
        cv2.imwrite(str(src / f"shot{i}.png"), img)
    pipe = run(EdgeTask(str(sobel_model)), str(src), save=True, project=tmp_path / "runs")
    results = list(pipe)
    assert [r.edges.shape for r in results] == [(40, 60), (33, 17)]
    np.testing.assert_allclose(results[1].edges, opencv_edges(cv2.imread(str(src / "shot1.png"))), atol=1e-5)
    assert sorted(p.name for p in pipe.run_dir.iterdir()) == ["shot0.png", "shot1.png"]
    assert cv2.imread(str(pipe.run_dir / "shot1.png")).shape == (33, 17, 3)


def test_stats_reported_per_frame(vtest, sobel_model):
    seen = []
    pipe = run(EdgeTask(str(sobel_model)), str(vtest), max_frames=6,
               on_stats=lambda s: seen.append((s.frames, s.total, dict(s.latency_ms), s.fps)))
    list(pipe)
    assert [s[0] for s in seen] == [1, 2, 3, 4, 5, 6] and seen[-1][1] == 6
    last = seen[-1][2]
    assert last["infer"] > 0 and last["decode"] > 0 and last["postprocess"] > 0 and seen[-1][3] > 0


def test_closing_early_finishes_outputs_and_joins_threads(vtest, sobel_model, tmp_path):
    before = threading.active_count()
    task = EdgeTask(str(sobel_model))
    pipe = run(task, str(vtest), save=True, save_json=True, project=tmp_path)
    for i, _ in enumerate(pipe):
        if i == 4:
            break
    pipe.close()
    assert threading.active_count() == before and task.closed == 1
    assert count_frames(pipe.run_dir / "vtest.mp4") == 5
    assert len((pipe.run_dir / "results.jsonl").read_text().splitlines()) == 5


def test_request_stop_ends_after_the_frame_in_hand(vtest, sobel_model, tmp_path):
    pipe = run(EdgeTask(str(sobel_model)), str(vtest), save=True, project=tmp_path)
    results = []
    for result in pipe:
        results.append(result)
        if len(results) == 3:
            pipe.request_stop()
    assert len(results) == 3 and count_frames(pipe.run_dir / "vtest.mp4") == 3


class CountingSource(Source):
    """A video source that records how many frames the decode thread has pulled."""

    def __init__(self, inner: Source) -> None:
        self.inner, self.name, self.total, self.decoded = inner, inner.name, inner.total, 0

    def __iter__(self):
        for frame in self.inner:
            self.decoded += 1
            yield frame

    def close(self) -> None:
        self.inner.close()


def test_queues_are_bounded_with_a_slow_consumer(vtest, sobel_model):
    source = CountingSource(open_source(str(vtest)))
    with run(EdgeTask(str(sobel_model)), source) as pipe:
        next(pipe)
        time.sleep(1.0)
        assert 4 <= source.decoded <= 1 + 4 + 4 + 2  # result + two queues of 4 + one in each thread


def test_task_errors_reach_the_caller_and_outputs_are_kept(vtest, sobel_model, tmp_path):
    class Failing(EdgeTask):
        calls = 0

        def infer(self, feeds):  # called in frame order from the inference thread
            self.calls += 1
            if self.calls == 4:
                raise InputError("Frame 3 is unsupported by this test task.")
            return super().infer(feeds)

    task = Failing(str(sobel_model))
    pipe = run(task, str(vtest), save_json=True, project=tmp_path)
    with pytest.raises(InputError, match="Frame 3"):
        list(pipe)
    assert task.closed == 1
    assert len((pipe.run_dir / "results.jsonl").read_text().splitlines()) == 3


def test_show_without_display_warns_and_continues(vtest, sobel_model, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.warns(RuntimeWarning, match="needs a display"):
        pipe = run(EdgeTask(str(sobel_model)), str(vtest), show=True, max_frames=2)
    assert len(list(pipe)) == 2


def test_bad_arguments_fail_before_any_work(vtest, sobel_model, tmp_path):
    with pytest.raises(InputError, match="Unknown task 'sharpen'"):
        run("sharpen", str(vtest))
    with pytest.raises(InputError, match="apply when task is a name"):
        run(EdgeTask(str(sobel_model)), str(vtest), model="x.onnx")


def test_live_stream_through_pipeline(mjpeg_server, sobel_model, tmp_path):
    pipe = run(EdgeTask(str(sobel_model)), mjpeg_server.url, save=True, max_frames=6, project=tmp_path)
    results = list(pipe)
    assert len(results) == 6
    assert all(r.edges.shape == (48, 64) for r in results)
    assert count_frames(pipe.run_dir / "video.mp4") == 6


class StrictEdges(EdgeTask):
    """Takes no **options, like the real tasks."""

    def __init__(self, model=None, threshold: float = 0.5) -> None:
        super().__init__(model, threshold)


def test_options_a_task_does_not_take_are_dropped_with_a_warning(vtest, sobel_model, monkeypatch):
    from edgeglocal import tasks

    monkeypatch.setitem(tasks._TASKS, "strict", f"{__name__}:StrictEdges")
    with pytest.warns(RuntimeWarning, match="does not use --side-by-side, --topk; ignored"):
        pipe = run("strict", str(vtest), model=str(sobel_model), max_frames=2,
                   task_options={"threshold": 0.01, "side_by_side": True, "topk": 3})
    results = list(pipe)
    assert pipe.task.threshold == 0.01 and len(results) == 2


def test_run_survives_a_stream_drop(mjpeg_server, sobel_model):
    marks = {}

    def on_stats(stats):
        if stats.frames == 5:
            marks["seq"] = mjpeg_server.seq
            mjpeg_server.drop(1.0)

    task = EdgeTask(str(sobel_model))
    results = list(run(task, mjpeg_server.url, max_frames=15, on_stats=on_stats))
    assert len(results) == 15 and mjpeg_server.connections >= 2
    assert task.postprocessed == sorted(set(task.postprocessed))  # in order, none repeated
    assert mjpeg_server.seq >= marks["seq"] + 10  # the last frames were served after the reconnect


def test_keyboard_interrupt_in_python_api_still_finishes_the_video(vtest, sobel_model, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    here = Path(__file__).resolve().parent
    code = (
        f"import sys; sys.path.insert(0, {str(here)!r})\n"
        "from edge_task import EdgeTask\nfrom edgeglocal import run\n"
        f"pipe = run(EdgeTask({str(sobel_model)!r}), {str(vtest)!r}, save=True, project={str(tmp_path)!r})\n"
        "try:\n    for r in pipe:\n        print('frame', flush=True)\n"
        "except KeyboardInterrupt:\n    print('interrupted', flush=True)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(here.parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for _ in range(5):
        assert proc.stdout.readline() == "frame\n"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.rstrip().endswith("interrupted"), err
    printed = 5 + out.count("frame")
    # Every printed frame is in the video; the interrupt may land after a write and before the print.
    assert printed <= count_frames(tmp_path / "edges" / "exp" / "vtest.mp4") <= printed + 1
    assert not list((tmp_path / "edges" / "exp").glob(".*"))


def test_each_stream_of_a_streams_file_gets_its_own_task(vtest, sobel_model, monkeypatch, tmp_path):
    from edgeglocal import tasks

    monkeypatch.setitem(tasks._TASKS, "strict", f"{__name__}:StrictEdges")
    pics = tmp_path / "pics"
    pics.mkdir()
    for i in range(3):
        cv2.imwrite(str(pics / f"p{i}.png"), np.full((24, 32, 3), 60 * i, np.uint8))
    listing = tmp_path / "two.streams"
    listing.write_text(f"{vtest}\n{pics}\n")
    pipe = run("strict", str(listing), model=str(sobel_model), max_frames=4, save=True, project=tmp_path / "runs")
    assert len(list(pipe)) == 7
    by_source = pipe.tasks_by_source
    assert set(by_source) == {str(vtest), str(pics)} and by_source[str(vtest)] is not by_source[str(pics)]
    assert by_source[str(vtest)].postprocessed == [0, 1, 2, 3] and by_source[str(pics)].postprocessed == [0, 1, 2]
    assert all(t.closed == 1 for t in by_source.values())
    assert sorted(p.name for p in pipe.outputs) == ["pics.mp4", "vtest.mp4"]
