"""``edgeglocal run`` end to end: real CLI, real ONNX task, real video files, Ctrl-C in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeglocal import tasks
from edgeglocal.cli.app import app

IO_TESTS = Path(__file__).resolve().parents[1] / "io"
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
needs_vtest = pytest.mark.skipif(not VTEST.exists(), reason=f"{VTEST} is missing (install opencv-doc)")


@pytest.fixture
def edges_task(monkeypatch, tmp_path_factory) -> Path:
    """Register the Sobel test task (tests/io/edge_task.py) as ``--task edges``; return its model."""
    monkeypatch.syspath_prepend(str(IO_TESTS))
    monkeypatch.setitem(tasks._TASKS, "edges", "edge_task:EdgeTask")
    from edge_task import build_sobel_bundle

    return build_sobel_bundle(tmp_path_factory.mktemp("sobel"))


@needs_vtest
def test_run_saves_and_reports_where(edges_task, tmp_path):
    args = ["run", "--task", "edges", "--source", str(VTEST), "--model", str(edges_task), "--vid-stride", "3",
            "--max-frames", "5", "--save", "--save-json", "--project", str(tmp_path), "--threshold", "0.2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "edges" / "exp"
    text = " ".join(result.output.split())  # Rich wraps long lines
    assert "Processed 5 frames" in text and "Results saved to" in text
    assert "results.jsonl" in text and "vtest.mp4" in text
    records = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == [0, 3, 6, 9, 12]
    from edge_task import count_frames

    assert count_frames(run_dir / "vtest.mp4") == 5
    again = CliRunner().invoke(app, args + ["--name", "exp"])
    assert again.exit_code == 0 and (tmp_path / "edges" / "exp2" / "results.jsonl").exists()


def test_run_errors_are_one_red_sentence(edges_task, tmp_path):
    result = CliRunner().invoke(app, ["run", "--task", "edges", "--source", str(tmp_path / "nope.mp4"),
                                      "--model", str(edges_task)])
    text = " ".join(result.output.split())  # Rich wraps long lines
    assert result.exit_code == 1
    assert "Error: Source" in text and "nope.mp4 does not exist" in text and "Traceback" not in text
    result = CliRunner().invoke(app, ["run", "--task", "sharpen", "--source", str(tmp_path)])
    assert result.exit_code == 1 and "Unknown task 'sharpen'" in " ".join(result.output.split())


@needs_vtest
def test_ctrl_c_keeps_a_playable_video(edges_task, tmp_path):
    code = (
        f"import sys; sys.path.insert(0, {str(IO_TESTS)!r}); import edgeglocal.tasks as t; "
        "t._TASKS['edges'] = 'edge_task:EdgeTask'; from edgeglocal.cli.app import main; main()"
    )
    cmd = [sys.executable, "-c", code, "run", "--task", "edges", "--source", str(VTEST), "--model", str(edges_task),
           "--save", "--save-json", "--project", str(tmp_path)]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    run_dir = tmp_path / "edges" / "exp"
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size > 20000 for p in run_dir.glob(".vtest*.mp4")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Interrupted after" in out
    video = run_dir / "vtest.mp4"
    from edge_task import count_frames

    frames = count_frames(video)
    assert 0 < frames < 795
    assert len((run_dir / "results.jsonl").read_text().splitlines()) == frames
    assert not list(run_dir.glob(".*"))
