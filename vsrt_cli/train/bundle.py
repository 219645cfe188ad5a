"""Ship a trained run: copy its weights into ``weights/`` and record them in the manifest.

    python -m vsrt_cli.train.bundle --run runs/main --ablation runs/ablation \
        --name vsrt-cpu-small --out weights
    python -m vsrt_cli.train.bundle --name vsrt-cpu-small-1f --unbundle-to runs/abl3

The manifest entry holds what a user (and the registry) needs: file, sha256, preset, parameter
count, training data and recipe, steps and time, the validation curve over training time, and
the measured quality next to bicubic and the single-frame ablation.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import torch

from vsrt_cli.zoo.download import sha256_file
from vsrt_cli.errors import CheckpointError, VsrtError
from vsrt_cli.model import VSRT, VSRTConfig, get_config
from vsrt_cli.zoo.registry import MANIFEST
from vsrt_cli.zoo.weights import FORMAT
from vsrt_cli.train.checkpoint import append_log
from vsrt_cli.train.loop import VAL_CRF, WEIGHTS_FILE


def read_curve(run: Path) -> list[dict[str, float]]:
    """Validation rows of a run's ``log.csv`` (compute/wall seconds, step, PSNR-Y, gain)."""
    with open(run / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    keep = ("compute_s", "wall_s", "step", "val_psnr_y", "val_bicubic_psnr_y", "val_ssim_y", "val_gain_db",
            "pan_val_psnr_y", "pan_val_bicubic_psnr_y", "pan_val_gain_db", "pan_flow_epe_px",
            *(f"crf{VAL_CRF}{blind}_{k}" for blind in ("", "blind") for k in ("val_psnr_y", "val_bicubic_psnr_y", "val_gain_db")))
    return [{k: round(float(r[k]), 4) for k in keep if r.get(k) not in (None, "")} for r in rows]


def shipped_entry(name: str) -> dict | None:
    """The manifest entry of the bundled model called ``name`` (None if there is none)."""
    from vsrt_cli.zoo.registry import bundled_dir

    manifest = bundled_dir() / MANIFEST
    if not manifest.is_file():
        return None
    return next((m for m in json.loads(manifest.read_text())["models"] if m["name"] == name), None)


def full_curve(run: Path, recipe: dict) -> tuple[list[dict[str, float]], list[dict]]:
    """The curve of ``run`` preceded by the runs it was warm-started from (``init_from``),
    with steps, compute and wall time counted from the very first run; and their recipes."""
    stages: list[tuple[Path | list[dict[str, float]], dict]] = [(run, recipe)]
    while stages[0][1].get("init_from"):
        source = stages[0][1]["init_from"]
        if not (Path(source) / WEIGHTS_FILE).exists() and (shipped := shipped_entry(source)) is not None:
            # warm-started from a bundled model by name: its manifest holds its whole history
            stages.insert(0, (shipped["training"]["curve"], {"stages": shipped["training"].get("stages"),
                                                               **shipped["training"].get("recipe", {}), "init_from": None}))
            break
        earlier = Path(source)
        payload = torch.load(earlier / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        stages.insert(0, (earlier, payload.get("recipe", {})))
    # a warm start's first row repeats the last one (not after a shipped model's history, from
    # the manifest or unbundled, which was validated on the held-out set of its own time)
    shipped_history = isinstance(stages[0][0], list) or bool(stages[0][1].get("unbundled_from"))
    curve: list[dict[str, float]] = []
    offset = {"step": 0.0, "compute_s": 0.0, "wall_s": 0.0}
    for stage_run, stage_recipe in stages:
        start = dict(offset)
        rows = stage_run if isinstance(stage_run, list) else read_curve(stage_run)
        for row in rows[1 if curve and not shipped_history else 0 :]:
            curve.append({k: round(v + offset.get(k, 0.0), 4) for k, v in row.items()})
        offset = {k: curve[-1][k] for k in offset}
        for k in ("step", "compute_s"):  # a frozen state (freeze_state) trained past its last validation
            if stage_run is not run and k in stage_recipe:
                offset[k] = max(offset[k], start[k] + float(stage_recipe[k]))
    recipes: list[dict] = []
    for _, recipe in stages:  # an unbundled run carries the recipes of its own earlier stages
        recipes.extend(recipe["stages"] if recipe.get("stages") else [recipe])
    return curve, recipes


def same_network(a: VSRTConfig, b: VSRTConfig) -> bool:
    """Whether two configs build the same network: which flow estimator a network without flow
    would use does not count (a single-frame twin trained beside a DIS video model)."""
    if not a.use_flow and not b.use_flow:
        b = replace(b, flow=a.flow)
    return a == b


def temporal_summary(report: dict) -> dict:
    """What the manifest keeps of a ``benchmarks/temporal.py --out`` report: the video model's
    margin over its single-frame twin and what its neighbours are worth, per group of held-out
    clips (moving, static, each clip) on the real and the panned windows."""
    keep = ("bicubic", "single", "video", "video_minus_single_db", "neighbours_worth_db", "motion_db", "windows")
    summary: dict[str, object] = {
        "command": f"python benchmarks/temporal.py --video VIDEO --single TWIN --windows {report.get('windows', 16)}",
        "protocol": "held-out clips, 5-frame windows, centre frame, PSNR-Y (BT.601), 4-pixel border, fp32",
    }
    for kind in ("real", "pan"):
        summary[kind] = {group: {k: row[k] for k in keep if k in row} for group, row in report[kind].items()}
    return summary


def bundle(run: Path, ablation: Path | None, name: str, preset: str, out: Path, description: str, *,
           twin: str | None = None, temporal: dict | None = None, first: bool = False,
           default_for: str | None = None) -> dict:
    """Ship ``run`` as ``name`` into ``out`` (weights file and manifest entry). ``twin`` names
    the bundled single-frame model trained beside it (``single_frame_twin``), ``temporal`` is
    its ``benchmarks/temporal.py`` report, ``first`` makes it the first entry: the default;
    ``default_for="video"`` makes it the default for video files (the compression-aware model)."""
    manifest_path = out / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"models": []}
    if twin is not None and twin not in [m["name"] for m in manifest["models"]]:
        raise SystemExit(f"--twin {twin} is not in {manifest_path}; bundle the twin first")
    payload = torch.load(run / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    config = VSRTConfig(**payload["config"])
    if not same_network(config, get_config(preset)):
        raise SystemExit(f"{run} was trained with {config}, not the {preset} preset")
    model = VSRT(config)
    model.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()}, strict=True)
    target = out / f"{name}.pth"
    tmp = target.with_name(f".{target.name}.partial")
    torch.save({**payload, "format": FORMAT}, tmp)
    tmp.replace(target)

    curve, recipes = full_curve(run, payload.get("recipe", {}))
    final = curve[-1]
    quality: dict[str, object] = {
        "protocol": "held-out clips (see training.recipe.val_sources), centre frame of 5-frame windows, "
        "PSNR/SSIM on Y (BT.601), 4-pixel border crop",
        "psnr_y": final.get("val_psnr_y"),
        "ssim_y": final.get("val_ssim_y"),
        "bicubic_psnr_y": final.get("val_bicubic_psnr_y"),
        "gain_over_bicubic_db": final.get("val_gain_db"),
    }
    if "pan_val_psnr_y" in final:
        quality["panned"] = {
            "protocol": "the same held-out clips' frames filmed by a camera panning at 0.25-1.25 LR "
            "px/frame (vsrt_cli/train/data.py panned_val_windows), centre frame scored as above",
            "psnr_y": final["pan_val_psnr_y"],
            "bicubic_psnr_y": final.get("pan_val_bicubic_psnr_y"),
            "gain_over_bicubic_db": final.get("pan_val_gain_db"),
            "flow_epe_px": final.get("pan_flow_epe_px"),
        }
    if ablation is not None:
        ab_payload = torch.load(ablation / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        ab = full_curve(ablation, ab_payload.get("recipe", {}))[0][-1]
        quality["single_frame_ablation"] = {
            "preset": f"{preset} with num_frame=1 and use_flow=False, same compute budget",
            "psnr_y": ab.get("val_psnr_y"),
            "gain_over_bicubic_db": ab.get("val_gain_db"),
        }
        if "val_psnr_y" in final and "val_psnr_y" in ab:
            quality["gain_over_ablation_db"] = round(final["val_psnr_y"] - ab["val_psnr_y"], 4)
        if "pan_val_psnr_y" in final and "pan_val_psnr_y" in ab:
            quality["single_frame_ablation"]["panned_psnr_y"] = ab["pan_val_psnr_y"]
            quality["panned_gain_over_ablation_db"] = round(final["pan_val_psnr_y"] - ab["pan_val_psnr_y"], 4)
    if f"crf{VAL_CRF}_val_psnr_y" in final:
        quality["compressed"] = {
            "protocol": f"the same windows' LR through libx264 at CRF {VAL_CRF} (preset medium), the "
            "network told the QP its decoder reports (blind: told nothing)",
            "psnr_y": final[f"crf{VAL_CRF}_val_psnr_y"],
            "bicubic_psnr_y": final.get(f"crf{VAL_CRF}_val_bicubic_psnr_y"),
            "blind_psnr_y": final.get(f"crf{VAL_CRF}blind_val_psnr_y"),
        }
    if temporal is not None:
        quality["temporal"] = temporal_summary(temporal)
    recipe = payload.get("recipe", {})
    gpu_s = float(recipe.get("gpu_s") or 0.0)
    # the whole budget: the earlier stages, then this run up to its state (a frozen state may
    # have trained past its last validation)
    own = read_curve(run)[-1]
    spent = {k: final.get(k, 0.0) - own.get(k, 0.0) + float(recipe.get(r, own.get(k, 0.0)))
             for k, r in (("compute_s", "compute_s"), ("step", "step"))}
    entry = {
        "name": name,
        "preset": preset,
        "file": target.name,
        "sha256": sha256_file(target),
        "bytes": target.stat().st_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "description": description,
        "license": "weights: CC-BY-4.0 (trained on CC-BY 3.0/4.0 clips, see training.recipe.data_licences)",
        "training": {
            "command": "python -m vsrt_cli.train --stage spynet|main|ablation (see vsrt_cli/train/__init__.py)",
            "recipe": payload.get("recipe", {}),
            "stages": recipes if len(recipes) > 1 else None,
            "steps": final.get("step"),
            "compute_seconds": final.get("compute_s"),
            "wall_seconds": final.get("wall_s"),
            "budget": {"cpu_minutes": round(spent["compute_s"] / 60, 1), "gpu_minutes": round(gpu_s / 60, 1),
                       "steps": int(spent["step"])},
            "curve": curve,
        },
        "quality": quality,
    }
    if twin is not None:
        entry["single_frame_twin"] = twin
    if default_for is not None:
        entry["default_for"] = default_for
    names = [m["name"] for m in manifest["models"]]
    shipped = manifest["models"][names.index(name)] if name in names else None
    if shipped is not None and "cost" in shipped and shipped.get("preset") == preset:
        entry["cost"] = shipped["cost"]  # measured on the README job: the same network costs the same
    if first:  # the first entry is the default model
        manifest["models"] = [entry] + [m for m in manifest["models"] if m["name"] != name]
    elif name in names:  # in place
        manifest["models"][names.index(name)] = entry
    else:
        manifest["models"].append(entry)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return entry


def unbundle(name: str, weights: Path, out: Path) -> Path:
    """The inverse of :func:`bundle`: a finished run folder (``weights_fp16.pt`` and ``log.csv``
    with the manifest's whole curve) from a shipped model, so that ``--init-from`` can
    warm-start from it in a fresh checkout. ``init_from`` is cleared because the curve already
    holds the earlier stages; their recipes are kept under ``stages``. Written to a temporary
    folder renamed into place, so a failure leaves no half-made run behind."""
    manifest_path = weights / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"{manifest_path} not found; pass --out with the folder of shipped weights")
    entry = next((m for m in json.loads(manifest_path.read_text())["models"] if m["name"] == name), None)
    if entry is None:
        raise CheckpointError(f"{name} is not in {manifest_path}; see `vsrt models list`")
    if out.exists():
        raise CheckpointError(f"{out} already exists; choose another folder")
    payload = torch.load(weights / entry["file"], map_location="cpu", weights_only=True)
    recipe = dict(payload.get("recipe", {}))
    recipe["stages"] = entry["training"].get("stages") or None
    recipe["init_from"] = None
    recipe["unbundled_from"] = f"{weights / entry['file']} (sha256 {entry['sha256']})"
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save({**payload, "recipe": recipe}, tmp / WEIGHTS_FILE)
    for row in entry["training"]["curve"]:  # later rows may add columns (pan_*)
        append_log(tmp, row)
    tmp.rename(out)
    return out


def export_state(run: Path, target: Path) -> Path:
    """The weights a running run would ship now (its weight average if it keeps one, with the
    frozen SPyNet it references), in vsrt's format at ``target``, without stopping the run:
    for measuring it mid-way (``benchmarks/temporal.py``, ``benchmarks/quality.py --weights``)."""
    from vsrt_cli.model import build_model
    from vsrt_cli.train.checkpoint import export_weights, load_run_state
    from vsrt_cli.train.steps import load_spynet_weights, model_config

    ckpt, cfg = load_run_state(run)
    config = model_config(cfg)
    net = build_model(config)
    if config.quant_blend:
        from vsrt_cli.train.loop import load_frozen_body

        load_frozen_body(cfg, net)
    net.load_state_dict(ckpt.get("ema", ckpt["model"]), strict=False)
    if cfg.stage == "main" and cfg.flow_lr_mul == 0 and net.spynet is not None:
        net.spynet.load_state_dict(load_spynet_weights(Path(cfg.spynet_from)))
    recipe = {k: v for k, v in ckpt["config"].items() if not isinstance(v, (list, tuple))}
    recipe.update(step=ckpt["step"], compute_s=round(ckpt["compute"], 1), gpu_s=ckpt.get("gpu_s", 0.0))
    target.parent.mkdir(parents=True, exist_ok=True)
    export_weights(net, config, target, recipe, {})
    return target


def freeze_state(run: Path, folder: Path) -> Path:
    """A finished-run folder (``weights_fp16.pt`` and ``log.csv``) from a running run's state, so
    that another run can branch from it with ``--init-from FOLDER`` while this one goes on: the
    weights it would ship now (:func:`export_state`) and its curve up to now, whose recipe still
    names what it was warm-started from (the branch's curve then starts at the very beginning).
    Written to a temporary folder renamed into place."""
    from vsrt_cli.train.checkpoint import load_checkpoint, restore_curve

    if folder.exists():
        raise CheckpointError(f"{folder} already exists; choose another folder")
    ckpt = load_checkpoint(run)
    if ckpt is None:
        raise CheckpointError(f"{run}/last.pt not found: --freeze needs a run's state")
    tmp = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    export_state(run, tmp / WEIGHTS_FILE)
    restore_curve(tmp, ckpt.get("curve"))
    tmp.rename(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="finished run to ship")
    parser.add_argument("--unbundle-to", type=Path, metavar="DIR",
                        help="instead: rebuild a run folder from the shipped model --name (for --init-from)")
    parser.add_argument("--export-state", type=Path, metavar="RUN",
                        help="instead: write the weights running RUN would ship now to --to FILE")
    parser.add_argument("--freeze", type=Path, metavar="RUN",
                        help="instead: a finished-run folder --to DIR of RUN as it is now (to branch from)")
    parser.add_argument("--to", type=Path)
    parser.add_argument("--ablation", type=Path)
    parser.add_argument("--name", default="vsrt-cpu-small")
    parser.add_argument("--preset", default="vsrt-cpu-small")
    parser.add_argument("--out", type=Path, default=Path("weights"))
    parser.add_argument("--description", default="vsrt's own CPU-sized VSRT, trained here on CC-BY clips")
    parser.add_argument("--twin", help="the bundled single-frame model trained beside this one")
    parser.add_argument("--temporal", type=Path, help="benchmarks/temporal.py --out report to record")
    parser.add_argument("--default", action="store_true", help="make it the first entry: the default model")
    parser.add_argument("--default-for", choices=("video",), help="make it the default for video files")
    args = parser.parse_args()
    if args.export_state is not None:
        if args.to is None:
            parser.error("--export-state needs --to FILE")
        print(f"wrote {export_state(args.export_state, args.to)}")
        return
    if args.freeze is not None:
        if args.to is None:
            parser.error("--freeze needs --to DIR")
        try:
            print(f"wrote {freeze_state(args.freeze, args.to)}")
        except VsrtError as err:
            raise SystemExit(f"error: {err}") from None
        return
    if args.unbundle_to is not None:
        try:
            print(f"wrote {unbundle(args.name, args.out, args.unbundle_to)}")
        except VsrtError as err:
            raise SystemExit(f"error: {err}") from None
        return
    if args.run is None:
        parser.error("--run is required (or --unbundle-to)")
    temporal = json.loads(args.temporal.read_text()) if args.temporal is not None else None
    entry = bundle(args.run, args.ablation, args.name, args.preset, args.out, args.description,
                   twin=args.twin, temporal=temporal, first=args.default, default_for=args.default_for)
    print(json.dumps({k: entry[k] for k in ("name", "file", "sha256", "bytes", "parameters", "quality")}, indent=2))


if __name__ == "__main__":
    main()
