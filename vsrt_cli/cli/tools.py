"""The commands that look at outputs rather than make them: ``eval``, ``info``, ``compare`` and
``preview``. Registered on the main app by :func:`register`; like cli.py, only this prints."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

out = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("preview")(preview_command)
    app.command("compare")(compare_command)
    app.command("info")(info_command)
    app.command("eval")(eval_command)


def eval_command(
    paths: Annotated[list[Path], typer.Argument(help="OUTPUT... TRUTH: one or more upscaled videos or frame folders, then the ground truth (or a folder of outputs and a folder of truths, matched by name).", show_default=False)],
    crop_border: Annotated[int, typer.Option(help="Pixels ignored at every edge.")] = 0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the scores (per frame too) to this JSON file.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Draw PSNR-Y and warping error per frame of each output into this PNG.")] = None,
    temporal: Annotated[bool, typer.Option("--temporal/--no-temporal", help="Warping error along the truth's optical flow (DIS), and the seam ratio.")] = True,
    window: Annotated[Optional[int], typer.Option(help="Frames per model call the outputs were made with, for the seam ratio (default: from each output's .vsrt.json).")] = None,
    window_stride: Annotated[Optional[int], typer.Option(help="Their --window-stride (default: from each output's .vsrt.json).")] = None,
) -> None:
    """PSNR/SSIM against ground truth, flicker and seams; per clip and mean.

    Flicker is the warping error between consecutive frames along the truth's own motion; the
    seam ratio compares pairs from two model calls with pairs from one (1 = no seam). The
    truth's own values are shown in brackets."""
    import json

    from vsrt_cli.errors import ConfigError, InputError
    from vsrt_cli.inspect.evaluate import clip_pairs, score_clips

    if len(paths) < 2:
        raise ConfigError("vsrt eval needs at least one output and the ground truth: vsrt eval OUTPUT... TRUTH")
    *outputs, truth = paths
    if (window is None) != (window_stride is None):
        raise ConfigError("give --window and --window-stride together (or neither, to read them from each output's .vsrt.json)")
    flow = None
    if temporal:
        from vsrt_cli.engine.temporal import ReferenceFlow

        flow = ReferenceFlow()
    if len(outputs) == 1:
        groups = [([(n, p)], t) for n, p, t in clip_pairs(outputs[0], truth)]
    else:
        for p in (*outputs, truth):
            if not p.exists():
                raise InputError(f"{p}: no such file or folder")
        names = [p.stem for p in outputs]
        if len(set(names)) < len(names):
            names = [str(p) for p in outputs]
        groups = [(list(zip(names, outputs)), truth)]
    scores = []
    for group, truth_clip in groups:
        scores += score_clips([p for _, p in group], truth_clip, crop_border=crop_border, names=[n for n, _ in group],
                              flow=flow, calls=[_calls(p, window, window_stride) for _, p in group])
    out.print(_score_table(scores))
    if temporal:
        out.print("warp: mean |Y| change between consecutive frames after moving the earlier one along the truth's "
                  "motion (SPyNet), in 8-bit levels; lower is steadier, but below the truth's own value it usually means "
                  "lost detail (a blur changes less), not a steadier video. seam: warp at pairs from two model calls / "
                  "at pairs from one; 1 = no seam. (truth's own value)", highlight=False, soft_wrap=True)
    fields = ("psnr_rgb", "psnr_y", "ssim_rgb", "ssim_y", "warp_error", "warp_error_truth", "seam", "seam_truth")
    means = {k: _mean([getattr(s, k) for s in scores]) for k in fields}
    if json_out is not None:
        json_out.write_text(json.dumps({"clips": [dataclasses.asdict(s) for s in scores], "mean": means}, indent=2))
    if plot is not None:
        from vsrt_cli.io.frames import encode_png
        from vsrt_cli.inspect.plot import eval_plot

        plot.write_bytes(encode_png(eval_plot(scores, one_truth=len(groups) == 1)))


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _calls(output: Path, window: int | None, stride: int | None):
    """Frame count -> model call of each frame, for the seam ratio: from the options given, else
    the output's record; None when neither says."""
    from vsrt_cli.io.sidecar import read_sidecar
    from vsrt_cli.engine.temporal import call_ids

    if window is None or stride is None:
        record = read_sidecar(output) if output.exists() else None
        options = (record or {}).get("options", {})
        if "window" not in options or "stride" not in options:
            return None
        window, stride = int(options["window"]), int(options["stride"])
        chunks = tuple((record or {}).get("chunk_starts", ()))
    else:
        chunks = ()
    return lambda frames: call_ids(frames, window, stride, chunks)


def _score_table(scores: list) -> Table:
    temporal = any(s.warp_error is not None for s in scores)
    columns = ["clip", "frames", "PSNR RGB", "PSNR Y", "SSIM RGB", "SSIM Y"] + (["warp (truth)", "seam (truth)"] if temporal else [])
    table = Table(*columns)

    def num(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    def row(name: str, frames: int, values: dict) -> list[str]:
        cells = [name, str(frames), num(values["psnr_rgb"], 3), num(values["psnr_y"], 3), num(values["ssim_rgb"], 4), num(values["ssim_y"], 4)]
        if temporal:
            cells += [f"{num(values['warp_error'], 2)} ({num(values['warp_error_truth'], 2)})",
                      f"{num(values['seam'], 2)} ({num(values['seam_truth'], 2)})"]
        return cells

    for s in scores:
        table.add_row(*row(s.name, s.frames, dataclasses.asdict(s)))
    if len(scores) > 1:
        keys = ("psnr_rgb", "psnr_y", "ssim_rgb", "ssim_y", "warp_error", "warp_error_truth", "seam", "seam_truth")
        table.add_row(*row("mean", sum(s.frames for s in scores), {k: _mean([getattr(s, k) for s in scores]) for k in keys}))
    return table


def info_command(
    output: Annotated[Path, typer.Argument(help="An output of vsrt (video, frame folder, or its .vsrt.json).", show_default=False)],
    json_out: Annotated[bool, typer.Option("--json", help="Print the whole record as JSON.")] = False,
) -> None:
    """How an output was made: model, sha256, options, device, timings.

    Read from OUT.vsrt.json beside the output, else from the container's tag."""
    import json

    from vsrt_cli.errors import InputError
    from vsrt_cli.io.sidecar import parse_tag, read_container_tag, read_sidecar, sidecar_path

    if not output.exists():
        raise InputError(f"{output}: no such file or folder")
    record = read_sidecar(output)
    if record is None:
        tag = read_container_tag(output)
        if tag is None:
            raise InputError(
                f"{output} has no record of how it was made: no {sidecar_path(output).name} beside it and no vsrt "
                "tag in its container (it was made with --no-sidecar, by another tool, or the record was moved)"
            )
        if json_out:
            out.print_json(json.dumps({"tag": tag, **parse_tag(tag)}))
            return
        out.print(f"no {sidecar_path(output).name}; from the container tag:", highlight=False, markup=False)
        for key, value in parse_tag(tag).items():
            out.print(f"{key}: {value}", highlight=False, markup=False, soft_wrap=True)
        return
    if json_out:
        out.print_json(json.dumps(record))
        return
    for line in record_lines(record):
        out.print(line, highlight=False, markup=False, soft_wrap=True)


def record_lines(record: dict[str, Any]) -> list[str]:
    """The record as ``field: value`` lines (never wrapped, so hashes stay whole and greppable)."""
    model = record.get("model", {})
    timings = record.get("timings", {})
    inp = record.get("input", {})
    device = record.get("device", {})
    rows = [
        ("made by", f"vsrt {record.get('vsrt')}"),
        ("output", record.get("output")),
        ("source", record.get("source")),
        ("created", record.get("created")),
        ("model", model.get("name")),
        ("model sha256", model.get("sha256")),
        ("device", f"{device.get('type')} ({device.get('name')}), torch {device.get('torch')}, {device.get('threads')} threads"),
        ("precision", record.get("precision")),
        ("frames", record.get("frames")),
        ("size", _size_line(record.get("size"))),
        ("time", f"{timings.get('total_s')} s ({timings.get('fps')} fps; first frame after {timings.get('first_frame_s')} s)"),
        ("output bytes", record.get("bytes")),
        ("input fingerprint", f"{inp.get('sha256')} ({inp.get('bytes')} bytes; {inp.get('method')})"),
    ]
    lines = [f"{key}: {'' if value is None else value}" for key, value in rows]
    lines.append("options:")
    lines += [f"  {key}: {value}" for key, value in record.get("options", {}).items()]
    return lines


def _size_line(size: dict[str, Any] | None) -> str | None:
    """``asked --height 1080, made 1440x1080 (bicubic)``; None for records older than the field."""
    if not size:
        return None
    made = size.get("made")
    made_text = f"{made[0]}x{made[1]}" if made else "?"
    filter = f" ({size['filter']})" if size.get("filter") else ""
    return f"asked {size.get('asked')}, made {made_text}{filter}"


def compare_command(
    inputs: Annotated[list[Path], typer.Argument(help="Two or more videos or frame folders; the first sets the clock.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="The comparison video (or .png with --frame).", show_default=False)],
    mode: Annotated[str, typer.Option(help="side (in a row), grid, wipe (vertical bands of one picture) or diff (|X - first| x4).")] = "side",
    label: Annotated[Optional[list[str]], typer.Option("--label", help="A label per input, in order (default: file names).")] = None,
    frame: Annotated[Optional[int], typer.Option(help="Write only this frame (0-based, of the first input) as a PNG.")] = None,
    crop: Annotated[Optional[str], typer.Option(help="Show only this region, WxH+X+Y in pixels of the compared size (every input zoomed to the largest input's size).")] = None,
    fps: Annotated[str, typer.Option(help="Frame rate of image-folder inputs.")] = "25",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """A labelled, frame-synchronised comparison of several outputs.

    Frames are matched by timestamp; every input is zoomed (nearest neighbour) to the largest
    one's size, and --crop cuts the same region of that size from each."""
    from fractions import Fraction

    from vsrt_cli.inspect.compare import CompareDone, compare
    from vsrt_cli.errors import ConfigError
    from vsrt_cli.io.excerpt import Crop

    region = Crop.parse(crop) if crop else None
    try:
        rate = Fraction(fps)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"--fps {fps}: give a number such as 25 or 30000/1001") from None
    done = None
    with err.status("comparing", spinner="dots") if not quiet else _nothing():
        for event in compare(inputs, output, mode=mode, labels=label, frame=frame, fps=rate, overwrite=overwrite,  # type: ignore[arg-type]
                             crop=region):
            if isinstance(event, CompareDone):
                done = event
    if done is not None and not quiet:
        err.print(f"[green]done:[/] {done.frames} frame(s), {done.width}x{done.height} -> {done.output}",
                  highlight=False, soft_wrap=True)


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def preview_command(
    input: Annotated[Path, typer.Argument(help="The video to try settings on.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Side-by-side of bicubic and every candidate: a video, or .png for the middle frame.", show_default=False)],
    try_: Annotated[Optional[list[str]], typer.Option("--try", help="Candidate settings, KEY=VALUE,... with keys model, weights, precision, device, tile, tile-overlap, window, window-stride, batch, scale, width, height, size, restore; repeat for more (default: one run with the defaults).")] = None,
    start: Annotated[Optional[str], typer.Option(help="Where the excerpt begins: seconds or HH:MM:SS.mmm, as `vsrt upscale --start` (default: centred).")] = None,
    seconds: Annotated[str, typer.Option(help="Length of the excerpt: seconds or HH:MM:SS.mmm.")] = "2",
    crop: Annotated[Optional[str], typer.Option(help="Only this region, WxH+X+Y in input pixels.")] = None,
    temporal: Annotated[bool, typer.Option("--temporal/--no-temporal", help="Measure flicker (warping error along the bicubic upscale's motion).")] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Try settings on a short excerpt before the long run.

    Prints each candidate's fps, peak memory, flicker and the estimated time and size of the
    whole clip, and writes a labelled side-by-side of bicubic and every candidate."""
    from vsrt_cli.cli.progress import notice_line
    from vsrt_cli.jobs.build import build_job  # the options of `vsrt upscale`, resolved exactly as it does
    from vsrt_cli.io.excerpt import Crop
    from vsrt_cli.inspect.preview import Candidate, CandidateResult, CandidateStarted, PreviewDone, parse_try, preview
    from vsrt_cli.cli.progress import human_size

    candidates = []
    for spec in try_ or [""]:
        o = parse_try(spec)
        net, job = build_job(
            source=input, output=output, model=o.get("model"), weights=Path(o["weights"]) if "weights" in o else None,
            device=o.get("device", "auto"), precision=o.get("precision", "auto"),
            tile=_int(o, "tile"), tile_overlap=_int(o, "tile-overlap"), window=_int(o, "window"),
            window_stride=_int(o, "window-stride"), batch=_int(o, "batch"), codec=None, crf=16, preset="medium",
            pix_fmt=None, fps="25", no_audio=True, overwrite=True, skip_bad_frames=False, quiet=quiet,
            say=lambda notice: err.print(notice_line(notice), highlight=False, soft_wrap=True),
            scale=_float(o, "scale"), width=_int(o, "width"), height=_int(o, "height"), size=o.get("size"),
            resize_filter=o.get("resize-filter", "bicubic"), restore=o.get("restore", "auto"),
        )
        short = ",".join(f"{k}={Path(v).name if k == 'weights' else v}" for k, v in o.items())
        candidates.append(Candidate(f"#{len(candidates) + 1} {short or 'defaults'}", net, job))
    done = None
    results: list[CandidateResult] = []
    from vsrt_cli.io.span import parse_time  # one rule for every time on the command line

    first = parse_time(start, "--start") if start is not None else None
    events = preview(input, output, candidates, start=first, seconds=parse_time(seconds, "--seconds"),
                     crop=Crop.parse(crop) if crop else None, temporal=temporal, overwrite=overwrite)
    with err.status("cutting the excerpt", spinner="dots") if not quiet else _nothing() as status:
        for event in events:
            if isinstance(event, CandidateStarted) and status is not None:
                status.update(f"candidate {event.number}/{len(candidates)}: {event.label}")
            elif isinstance(event, CandidateResult):
                results.append(event)
                if status is not None:
                    status.update("measuring flicker and drawing the side-by-side")
            elif isinstance(event, PreviewDone):
                done = event
    if done is None or quiet:
        return
    ex = done.excerpt
    out.print(f"excerpt: {ex.frames} frames from {ex.start:.2f} s, {ex.width}x{ex.height} "
              f"(whole clip: {done.whole_frames} frames, {ex.info.width}x{ex.info.height})", highlight=False)
    for cand in candidates:
        out.print(cand.label, highlight=False, soft_wrap=True)
    table = Table("", "fps", f"peak mem ({results[0].memory_kind if results else ''})", "ETA whole clip",
                  "est. size", "flicker (bicubic)")
    ref = "-" if done.reference_warp_error is None else f"{done.reference_warp_error:.2f}"
    for r in results:
        flicker = "-" if r.warp_error is None else f"{r.warp_error:.2f} ({ref})"
        table.add_row(r.label.split()[0], f"{r.fps:.2f}", human_size(r.peak_memory), _duration(r.eta_seconds),
                      human_size(int(r.size_bytes)), flicker)
    out.print(table)
    out.print(f"side-by-side: {done.output}", highlight=False)


def _int(options: dict[str, str], key: str) -> int | None:
    from vsrt_cli.errors import ConfigError

    if key not in options:
        return None
    try:
        return int(options[key])
    except ValueError:
        raise ConfigError(f"--try {key}={options[key]}: must be a whole number") from None


def _float(options: dict[str, str], key: str) -> float | None:
    from vsrt_cli.errors import ConfigError

    if key not in options:
        return None
    try:
        return float(options[key])
    except ValueError:
        raise ConfigError(f"--try {key}={options[key]}: must be a number") from None


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
