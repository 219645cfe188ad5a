"""The ``real`` degradation: deterministic, every codec works at any size, artefacts coherent in
time, and a single-frame twin sees the same centre frames as the video model."""

from __future__ import annotations

import numpy as np
import pytest

from vsrt_cli.train import realdeg
from vsrt_cli.train.data import Sequence, WindowSampler
from vsrt_cli.train.degrade import bi_degrade


def smooth_window(t: int, h: int, w: int, seed: int = 0, moving: bool = True) -> np.ndarray:
    """``[t, h, w, 3]`` uint8 GT: soft colour blobs, drifting 1 px per frame if ``moving``."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = []
    for k in range(t):
        shift = k if moving else 0
        img = np.zeros((h, w, 3))
        for c in range(3):
            fy, fx, ph = rng.uniform(0.02, 0.15, 2).tolist() + [rng.uniform(0, 6)]
            img[..., c] = 128 + 90 * np.sin(fy * ys + fx * (xs + shift) + ph)
        rng = np.random.default_rng(seed)  # the same scene in every frame
        frames.append(img)
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-10))


def test_deterministic_under_the_seed_and_varied_across_seeds():
    gt = smooth_window(5, 64, 96)
    a = realdeg.real_degrade(gt, np.random.default_rng(3))[0]
    b = realdeg.real_degrade(gt, np.random.default_rng(3))[0]
    assert a.shape == (5, 16, 24, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    others = [realdeg.real_degrade(gt, np.random.default_rng(s))[0] for s in range(4, 10)]
    assert any(not np.array_equal(a, o) for o in others)


@pytest.mark.parametrize("codec", realdeg.CODECS)
def test_every_codec_round_trips_any_size(codec, monkeypatch):
    monkeypatch.setattr(realdeg, "CODECS", (codec,))
    lr = bi_degrade(smooth_window(5, 4 * 9, 4 * 13))  # odd LR size, below the codec minimum
    out, qp = realdeg.compress(lr, np.random.default_rng(0))
    assert out.shape == lr.shape and out.dtype == np.uint8
    assert 20 < psnr(out, lr) < 60  # compressed, not replaced
    # the quantiser, on H.264's scale, as a user's video is read (x265: from its CRF setting)
    assert 10 <= qp <= 51


def test_codec_artefacts_are_coherent_in_time(monkeypatch):
    """A still window through one encoder: the frames' errors repeat from frame to frame (a P
    frame copies its reference), unlike independent per-frame compression."""
    monkeypatch.setattr(realdeg, "CODECS", ("libx264",))
    lr = bi_degrade(smooth_window(1, 4 * 24, 4 * 24, moving=False))[0] // 8 * 8  # banding to code
    noisy = np.clip(lr + np.random.default_rng(1).normal(0, 6, lr.shape), 0, 255).astype(np.uint8)
    window = np.repeat(noisy[None], 5, axis=0)
    coherent = []
    for seed in range(6):
        out, _ = realdeg.compress(window, np.random.default_rng(seed))
        error = np.abs(out.astype(int) - window.astype(int)).mean()
        change = np.abs(np.diff(out.astype(int), axis=0)).mean()
        coherent.append(change < 0.5 * error)
    assert sum(coherent) >= 4  # most random settings (GOP 1 gives intra frames: not coherent)


def test_a_single_frame_twin_sees_the_video_models_centre_frames():
    gt = smooth_window(9, 4 * 24, 4 * 24)
    seq = Sequence("a/x", gt, bi_degrade(gt))
    five = WindowSampler([seq], 5, 16, degradation="real")
    one = WindowSampler([seq], 1, 16, degradation="real")
    clean = 0
    for k in range(20):
        lr5, gt5, _, _ = five.sample(np.random.default_rng(k))
        lr1, gt1, _, _ = one.sample(np.random.default_rng(k))
        assert lr1.shape == (1, 16, 16, 3) and np.array_equal(lr1[0], lr5[2]) and np.array_equal(gt1[0], gt5[2])
        clean += np.array_equal(lr5, bi_degrade(np.ascontiguousarray(gt5)))
    # about CLEAN_SHARE of the windows keep the BI protocol, the others are degraded
    assert 1 <= clean <= 12


def test_the_clean_share_is_exactly_the_bi_protocol_and_the_rest_is_not():
    gt = smooth_window(5, 4 * 16, 4 * 16)
    outs = [realdeg.real_degrade(gt, np.random.default_rng(s))[0] for s in range(60)]
    clean = sum(np.array_equal(o, bi_degrade(gt)) for o in outs)
    assert abs(clean / 60 - realdeg.CLEAN_SHARE) <= 0.15  # binomial spread


def test_a_runs_clean_share_sets_how_many_windows_stay_bi():
    from vsrt_cli.errors import ConfigError
    from vsrt_cli.train.config import TrainConfig

    gt = smooth_window(5, 4 * 16, 4 * 16)
    bi = bi_degrade(gt)
    assert all(np.array_equal(realdeg.real_degrade(gt, np.random.default_rng(s), 1.0)[0], bi) for s in range(10))
    # none kept on purpose: only the rare window that every stage happens to skip is BI (about 3%)
    assert sum(np.array_equal(realdeg.real_degrade(gt, np.random.default_rng(s), 0.0)[0], bi) for s in range(30)) <= 3
    half = sum(np.array_equal(realdeg.real_degrade(gt, np.random.default_rng(s), 0.6)[0], bi) for s in range(60))
    assert abs(half / 60 - 0.6) <= 0.15
    seqs = [Sequence("a/x", gt, bi)]
    sampler = WindowSampler(seqs, 5, 16, degradation="real", clean_share=1.0)
    for k in range(5):
        lr, gt5, _, quant = sampler.sample(np.random.default_rng(k))
        assert np.array_equal(lr, bi_degrade(np.ascontiguousarray(gt5))) and quant == 0.0  # known clean
    assert TrainConfig(stage="main", minutes=1).clean_share == realdeg.CLEAN_SHARE  # old states keep theirs
    with pytest.raises(ConfigError, match="clean-share"):
        TrainConfig(stage="main", minutes=1, clean_share=1.5)


def test_compressed_validation_windows_are_the_benchmarks_x264_of_the_same_windows():
    from vsrt_cli.train.validate import ValWindow, to_tensor

    gt = smooth_window(5, 4 * 20, 4 * 28)
    lr = bi_degrade(gt) // 4 * 4  # flat steps: something for the codec to lose
    window = ValWindow("v@0", to_tensor(lr), to_tensor(gt))
    (low,) = realdeg.compressed_windows([window], 40)
    (high,) = realdeg.compressed_windows([window], 18)
    assert low.gt is window.gt and low.flows is None and low.name == "v@0"
    assert low.lr.shape == window.lr.shape
    got = [psnr((w.lr.movedim(-3, -1) * 255).round().numpy(), lr.astype(np.float64)) for w in (low, high)]
    assert got[0] < got[1] < 60  # CRF 40 loses more than CRF 18, and both lose something
    assert np.array_equal(realdeg.h264(lr, 28)[0], realdeg.h264(lr, 28)[0])  # deterministic
    assert window.quant == 0.0 and 18 < high.quant < low.quant <= 51  # the QP the decoder reports


def test_decoded_windows_have_the_colours_the_reader_gives_a_users_video(tmp_path):
    """The network must see a compressed window as `vsrt upscale` reads one: the same YUV
    planes (lossless x264 here) come out of the round trip as out of VideoReader, to the code
    value, and without the swscale direct path's shift of the mean colour."""
    import av

    from vsrt_cli.io.probe import probe
    from vsrt_cli.io.reader import VideoReader

    lr = bi_degrade(smooth_window(3, 4 * 64, 4 * 80))  # no padding: MIN_CODEC_SIDE
    trip, qp = realdeg.round_trip(lr, "libx264", {"crf": "0", "preset": "medium"}, 250, None)
    path = tmp_path / "lossless.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = lr.shape[2], lr.shape[1], "yuv420p"
        stream.options = {"crf": "0", "preset": "medium"}
        for image in lr:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        container.mux(stream.encode(None))
    with VideoReader(probe(path)) as reader:
        read = np.stack([frame.image for frame in reader])
    assert qp == 0.0 and np.array_equal(trip, read)
    shift = (trip.astype(np.float64) - lr).mean(axis=(0, 1, 2))
    assert np.all(np.abs(shift) < 0.5), shift  # swscale's direct path: about -1.1 to -1.4
