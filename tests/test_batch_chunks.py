"""``vsrt batch --chunk-seconds``: long clips cut into chunks, run as units, stitched by the driver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.media import make_clip, timestamps
from tests.test_chunked import KILL_AFTER_STITCH, LOSSLESS, audio_packets, clip_with_audio, decoded
from vsrt_cli.jobs.batch import REPORT, BatchFinished, ChunkFinished, ClipFinished, ClipStarted, batch
from vsrt_cli.io.outputs import host
from vsrt_cli.engine.pipeline import Schedule, UpscaleJob
from vsrt_cli.jobs.provenance import ModelId

SECONDS = 0.25  # 6 frames at 24 fps: the 14-frame clip is cut at frames 5 and 10 (keyframes at 0, 4, 8, 12)


def template(tmp_path: Path, window: int = 5, stride: int = 3) -> UpscaleJob:
    return UpscaleJob(source=tmp_path, output=tmp_path, schedule=Schedule(tile=0, overlap=0, window=window, stride=stride, batch=4),
                      device=torch.device("cpu"), precision="fp32", encode=LOSSLESS)


def rows(out: Path) -> list[tuple]:
    return [(r["clip"], r["status"], r["frames"]) for r in json.loads((out / REPORT).read_text())["clips"]]


def hidden(out: Path) -> list[str]:
    return sorted(p.name for p in out.rglob(".*"))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    clip_with_audio(folder / "long.mp4")  # 14 frames at 24 fps, AAC audio, B-frames
    make_clip(folder / "short.mp4", frames=4, size=(32, 24))  # under SECONDS: runs whole
    return folder


@pytest.fixture(scope="module")
def unchunked(tiny_model, clips, tmp_path_factory) -> dict[tuple[int, int], Path]:
    runs = {}
    for window, stride in [(5, 3), (3, 1)]:
        out = tmp_path_factory.mktemp(f"whole{window}{stride}")
        list(batch(tiny_model, clips, out, template(out, window, stride)))
        runs[window, stride] = out
    return runs


def assert_same_outputs(out: Path, reference: Path, source: Path) -> None:
    for name in ("long.mp4", "short.mp4"):
        frames, whole = decoded(out / name), decoded(reference / name)
        assert len(frames) == len(whole) and all((a == b).all() for a, b in zip(frames, whole)), name
        assert timestamps(out / name) == timestamps(reference / name) == timestamps(source / name)
    assert audio_packets(out / "long.mp4") == audio_packets(source / "long.mp4")  # copied once, untouched


@pytest.mark.parametrize("window,stride", [(5, 3), (3, 1)])
def test_chunks_of_a_batch_stitch_into_the_unchunked_outputs(tiny_model, clips, unchunked, tmp_path, window, stride):
    out = tmp_path / "out"
    model = ModelId(name="tiny", sha256="0" * 64)
    events = list(batch(tiny_model, clips, out, template(tmp_path, window, stride), chunk_seconds=SECONDS, record=model))
    assert isinstance(events[-1], BatchFinished) and events[-1].failed == 0, [r.reason for r in events[-1].results]
    assert_same_outputs(out, unchunked[window, stride], clips)
    assert rows(out) == rows(unchunked[window, stride])  # the same report as an unchunked run
    chunks = [e.task for e in events if isinstance(e, ChunkFinished)]
    assert [(t.clip.name, t.chunk.start, t.chunk.end) for t in chunks] == [("long.mp4", 0, 5), ("long.mp4", 5, 10), ("long.mp4", 10, 14)]
    assert sorted(e.clip.name for e in events if isinstance(e, ClipStarted)) == ["long.mp4", "short.mp4"]  # once each
    assert json.loads((out / "long.mp4.vsrt.json").read_text())["chunk_starts"] == [5, 10]  # `vsrt eval` seams
    assert hidden(out) == []  # chunk files and partials gone


def test_a_span_of_a_batch_in_chunks_equals_the_span_unchunked(tiny_model, clips, tmp_path):
    from dataclasses import replace

    from vsrt_cli.io.span import Span

    span = Span(0.1, 0.5)  # long.mp4's frames 3 to 11; short.mp4's frame 3 (its last)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    list(batch(tiny_model, clips, whole, replace(template(whole), span=span)))
    events = list(batch(tiny_model, clips, parts, replace(template(parts), span=span), chunk_seconds=0.2))
    assert isinstance(events[-1], BatchFinished) and events[-1].failed == 0, [r.reason for r in events[-1].results]
    chunks = [e.task.chunk for e in events if isinstance(e, ChunkFinished)]
    assert [(c.start, c.end) for c in chunks] == [(3, 8), (8, 12)]  # source indices of the span's frames
    for name, count in (("long.mp4", 9), ("short.mp4", 1)):
        got, want = decoded(parts / name), decoded(whole / name)
        assert len(got) == len(want) == count and all((a == b).all() for a, b in zip(got, want)), name
        assert timestamps(parts / name) == timestamps(whole / name) and timestamps(parts / name)[0] == 0
    assert rows(parts) == rows(whole)
    assert hidden(parts) == []


def test_a_rerun_redoes_only_the_missing_chunks_and_cleans_only_this_hosts_partials(tiny_model, clips, unchunked, tmp_path, monkeypatch):
    import vsrt_cli.jobs.chunked as chunked

    out = tmp_path / "out"
    real = chunked.run_chunk
    seen: list[list[str]] = []

    def crash_in_second(runner, job, info, frames, chunk, path):
        work = real(runner, job, info, frames, chunk, path)
        for count in work:
            yield count
            if chunk.number == 1:
                seen.append(hidden(out))  # the chunk being written, under this host's and process's name
                work.close()
                raise RuntimeError("worker died")

    monkeypatch.setattr(chunked, "run_chunk", crash_in_second)
    events = list(batch(tiny_model, clips, out, template(tmp_path), chunk_seconds=SECONDS))
    results = {e.result.clip.name: e.result for e in events if isinstance(e, ClipFinished)}
    assert (results["long.mp4"].status, results["short.mp4"].status) == ("failed", "done")
    assert results["long.mp4"].reason.startswith("chunk 2 of 3: internal error: RuntimeError: worker died")
    chunk_files = hidden(out)
    assert len(chunk_files) == 2 and all(n.startswith(".long.mp4.vsrt-chunk-") and n.endswith(("001of003.nut", "003of003.nut")) for n in chunk_files)
    assert not (out / "long.mp4").exists()
    second = chunk_files[0].replace("001of003.nut", "002of003")
    assert f".{second}.vsrt-partial-{host()}-{os.getpid()}.nut" in seen[0]

    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    stale = out / f".{second}.vsrt-partial-{host()}-{dead.pid}.nut"  # a killed run on this host
    kept = [out / f".{second}.vsrt-partial-{host()}-{os.getppid()}.nut",  # a run still going here
            out / f".{second}.vsrt-partial-elsewhere-{dead.pid}.nut"]  # that PID means nothing there
    for path in (stale, *kept):
        path.write_bytes(b"half")
    ran: list[int] = []
    monkeypatch.setattr(chunked, "run_chunk", lambda *a: (ran.append(a[4].number), (yield from real(*a)))[1])
    events = list(batch(tiny_model, clips, out, template(tmp_path), chunk_seconds=SECONDS))
    assert {e.result.clip.name: e.result.status for e in events if isinstance(e, ClipFinished)} == {"long.mp4": "done", "short.mp4": "skipped"}
    assert ran == [1]  # the two finished chunks were not run again
    assert_same_outputs(out, unchunked[5, 3], clips)
    assert hidden(out) == sorted(p.name for p in kept)  # another process's and another host's are left alone
    assert rows(out) == [("long.mp4", "done", 14), ("short.mp4", "skipped", 0)]


def test_a_clip_shorter_than_a_chunk_or_frames_run_whole(tiny_model, clips, tmp_path):
    out = tmp_path / "out"
    events = list(batch(tiny_model, clips, out, template(tmp_path), chunk_seconds=60))
    assert not [e for e in events if isinstance(e, ChunkFinished)]
    assert rows(out) == [("long.mp4", "done", 14), ("short.mp4", "done", 4)]


def cli(tiny_weights: Path, clips: Path, out: Path, *extra: str, run: tuple[str, ...] = ("-m", "vsrt_cli")) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *run, "batch", str(clips), "-o", str(out), "--weights", str(tiny_weights),
         "--device", "cpu", "--precision", "fp32", "--tile", "0", "--window", "5", "--window-stride", "3",
         "--crf", "0", "--preset", "ultrafast", "--quiet", *extra],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_cli_chunk_seconds(tiny_weights, clips, tmp_path):
    whole, out = tmp_path / "whole", tmp_path / "out"
    assert cli(tiny_weights, clips, whole).returncode == 0
    run = cli(tiny_weights, clips, out, "--chunk-seconds", str(SECONDS))
    assert run.returncode == 0, run.stderr
    assert_same_outputs(out, whole, clips)  # against the CLI's own unchunked run: the same threads, the same sums
    assert json.loads((out / "long.mp4.vsrt.json").read_text())["chunk_starts"] == [5, 10] and hidden(out) == []
    bad = cli(tiny_weights, clips, tmp_path / "bad", "--chunk-seconds", "0")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --chunk-seconds 0: must be positive"


def test_a_rerun_removes_the_chunks_a_batch_killed_after_a_stitch_left(tiny_weights, clips, tmp_path):
    """Killed right after long.mp4's stitch: its output complete, its chunks and the report's
    row missing. The rerun skips it, removes its chunks and nothing else, and exits 0."""
    out = tmp_path / "out"
    out.mkdir()
    mine = [out / ".long.mp4.notes", out / ".long.mkv.vsrt-chunk-0123456789ab-001of003.nut"]  # the user's, another output's
    for path in mine:
        path.write_text("mine")
    killed = cli(tiny_weights, clips, out, "--chunk-seconds", str(SECONDS), run=("-c", KILL_AFTER_STITCH))
    assert killed.returncode == 137, killed.stderr
    spent = [n for n in hidden(out) if n.startswith(".long.mp4.vsrt-chunk-")]
    assert len(spent) == 3 and (out / "long.mp4").is_file()
    made = (out / "long.mp4").read_bytes()
    again = cli(tiny_weights, clips, out, "--chunk-seconds", str(SECONDS))
    assert again.returncode == 0, again.stderr
    assert (out / "long.mp4").read_bytes() == made
    assert hidden(out) == sorted(p.name for p in mine) and all(p.read_text() == "mine" for p in mine)
    assert rows(out) == [("long.mp4", "skipped", 0), ("short.mp4", "done", 4)]


def test_the_stitched_record_says_what_the_workers_ran_with_not_the_driver(tiny_model, clips, tmp_path):
    """A Ray worker resolves its own card's precision and tiles (the driver's job has its own):
    the chunked clip's record, written by the driver, gives what the chunks ran with."""
    from dataclasses import replace

    from vsrt_cli.jobs.executors.local import LocalExecutor

    class ResolvingWorker(LocalExecutor):
        """Runs each chunk as a worker whose card chose other tiles than the driver's job."""

        def run(self, model, units, template_job, record):
            for unit in units:
                if hasattr(unit, "plan"):
                    job = unit.plan.job
                    unit = replace(unit, plan=replace(unit.plan, job=replace(job, schedule=replace(job.schedule, tile=16, batch=3))))
                yield from super().run(model, [unit], template_job, record)

    out = tmp_path / "out"
    model = ModelId(name="tiny", sha256="0" * 64)
    events = list(batch(tiny_model, clips, out, template(tmp_path), chunk_seconds=SECONDS, record=model,
                        executor=ResolvingWorker()))
    assert isinstance(events[-1], BatchFinished) and events[-1].failed == 0
    ran = [e.ran for e in events if isinstance(e, ChunkFinished)]
    assert len(ran) == 3 and all(r["tile"] == 16 and r["batch"] == 3 and r["device"]["type"] == "cpu" for r in ran)
    record = json.loads((out / "long.mp4.vsrt.json").read_text())
    assert (record["options"]["tile"], record["options"]["batch"]) == (16, 3)  # the driver's job said 0 and 4
    assert record["device"]["type"] == "cpu" and record["precision"] == "fp32"
    whole = json.loads((out / "short.mp4.vsrt.json").read_text())  # not chunked: the template's, as it ran
    assert (whole["options"]["tile"], whole["options"]["batch"]) == (0, 4)
