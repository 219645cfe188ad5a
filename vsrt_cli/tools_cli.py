"""The commands that look at outputs rather than make them: ``eval``, ``info``, ``compare`` and
``preview``. Registered on the main app by :func:`register`; like cli.py, only this prints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

out = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
    app.command("info")(info_command)


def eval_command(
    output: Annotated[Path, typer.Argument(help="Upscaled video or frame folder (or a folder of them).", show_default=False)],
    truth: Annotated[Path, typer.Argument(help="Ground truth of the same size (or a folder of clips with the same names).", show_default=False)],
    crop_border: Annotated[int, typer.Option(help="Pixels ignored at every edge.")] = 0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the scores to this JSON file.")] = None,
) -> None:
    """PSNR and SSIM (RGB and Y, BT.601) of an output against ground truth, per clip and mean."""
    import dataclasses
    import json

    from vsrt_cli.evaluate import clip_pairs, score_clip

    scores = [score_clip(p, t, crop_border=crop_border, name=n) for n, p, t in clip_pairs(output, truth)]
    table = Table("clip", "frames", "PSNR RGB", "PSNR Y", "SSIM RGB", "SSIM Y")
    for s in scores:
        table.add_row(s.name, str(s.frames), f"{s.psnr_rgb:.3f}", f"{s.psnr_y:.3f}", f"{s.ssim_rgb:.4f}", f"{s.ssim_y:.4f}")
    means = {k: sum(getattr(s, k) for s in scores) / len(scores) for k in ("psnr_rgb", "psnr_y", "ssim_rgb", "ssim_y")}
    if len(scores) > 1:
        table.add_row("mean", str(sum(s.frames for s in scores)), f"{means['psnr_rgb']:.3f}", f"{means['psnr_y']:.3f}",
                      f"{means['ssim_rgb']:.4f}", f"{means['ssim_y']:.4f}")
    out.print(table)
    if json_out is not None:
        json_out.write_text(json.dumps({"clips": [dataclasses.asdict(s) for s in scores], "mean": means}, indent=2))


def info_command(
    output: Annotated[Path, typer.Argument(help="An output of vsrt (video, frame folder, or its .vsrt.json).", show_default=False)],
    json_out: Annotated[bool, typer.Option("--json", help="Print the whole record as JSON.")] = False,
) -> None:
    """How an output was made: model and its sha256, every option, device, precision, input
    fingerprint, frame count and timings (from OUT.vsrt.json, else the container's tag)."""
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
        ("time", f"{timings.get('total_s')} s ({timings.get('fps')} fps; first frame after {timings.get('first_frame_s')} s)"),
        ("output bytes", record.get("bytes")),
        ("input fingerprint", f"{inp.get('sha256')} ({inp.get('bytes')} bytes; {inp.get('method')})"),
    ]
    lines = [f"{key}: {'' if value is None else value}" for key, value in rows]
    lines.append("options:")
    lines += [f"  {key}: {value}" for key, value in record.get("options", {}).items()]
    return lines
