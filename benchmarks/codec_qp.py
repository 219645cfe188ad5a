"""What an encoder's setting is worth on H.264's quantiser scale: the x264 QP of equal distortion.

    python benchmarks/codec_qp.py [--frames 12] [--out FILE]

A compression-aware network is told how hard its input was compressed as an H.264 QP
(vsrt_cli/io/quant.py). Codecs whose decoder exports no such number need a mapping onto that
scale; this measures it. On the first ``--frames`` LR frames (BI of the source, as training
makes them) of two *training* clips (Tears of Steel, the squirrel: never the held-out ones),
the clip through libx264 at fixed QPs 10-46 (preset medium, one GOP) gives PSNR-Y against the
mean QP its decoder reports (what a network is told: I and B frames sit a few QP off the fixed
one); each setting of the codec under test gives a PSNR-Y, and the QP where the x264 curve
reaches it (linear between measured QPs) is its H.264 equivalent. Mean of the two clips.

Measured here: ``libx265`` at CRF 14-38, preset medium, as ``benchmarks/quality.py --codec
libx265`` encodes; ``mapped`` is what vsrt tells a network for that CRF (``x265_crf_to_qp``,
chosen by ``benchmarks/blend.py`` instead: equal PSNR is not equal need of the offsets).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quality import CODEC_OPTIONS  # noqa: E402  (benchmarks/ is the script's folder)
from vsrt_cli.io.quant import x265_crf_to_qp  # noqa: E402
from vsrt_cli.inspect.metrics import psnr  # noqa: E402
from vsrt_cli.train.data import decode_sequence, prepare  # noqa: E402
from vsrt_cli.train.realdeg import round_trip  # noqa: E402

CLIPS = ("tos_excerpt/clip_01_tears_of_steel.mp4", "pexels_squirrel/squirrel.mp4")
X264_QPS = tuple(range(10, 47, 3))
SETTINGS = {"libx265": ("crf", (14, 18, 23, 28, 33, 38), x265_crf_to_qp)}


def options(codec: str, value: int) -> dict[str, str]:
    """x264 at a fixed QP, the codec under test at a CRF, both as quality.py encodes them."""
    return {"qp" if codec == "libx264" else "crf": str(value), **CODEC_OPTIONS[codec]}


def score(lr: np.ndarray, codec: str, value: int) -> tuple[float, float]:
    """``(reported QP, PSNR-Y)`` of ``lr`` through ``codec`` at ``value``."""
    out, qp = round_trip(lr, codec, options(codec, value), 250, None)
    return qp, float(np.mean([psnr(a, b, y=True) for a, b in zip(out, lr)]))


def equal_qp(curve: list[tuple[float, float]], target: float) -> float:
    """The QP at which x264's PSNR-Y ``curve`` [(qp, dB)] (falling) reaches ``target``."""
    qps, dbs = np.array([q for q, _ in curve], float), np.array([d for _, d in curve])
    return float(np.interp(-target, -dbs, qps))  # np.interp needs rising x


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "train")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lrs = [prepare(decode_sequence(args.data / clip, args.frames), 1.0)[1] for clip in CLIPS]
    curves = [[score(lr, "libx264", q) for q in X264_QPS] for lr in lrs]
    report: dict[str, list[dict[str, float]]] = {}
    for codec, (name, values, mapping) in SETTINGS.items():
        rows = []
        for value in values:
            matched = [equal_qp(curve, score(lr, codec, value)[1]) for lr, curve in zip(lrs, curves)]
            rows.append({name: value, "x264_qp": round(float(np.mean(matched)), 2),
                         "per_clip": [round(m, 2) for m in matched], "mapped": round(mapping(value), 2)})
            print(f"{codec} {name} {value}: x264 QP {np.mean(matched):.2f} "
                  f"({' / '.join(f'{m:.2f}' for m in matched)}), mapped {mapping(value):.2f}", flush=True)
        report[codec] = rows
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
