"""Where and in which precision the model runs: devices, autocast, the process allocator, memory
failures and how much fits. Nothing here reads files or prints."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import platform
import re
from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np
import torch

from vsrt_cli.engine.schedule import MIN_TILE
from vsrt_cli.errors import ConfigError, ResourceError
from vsrt_cli.engine.yuv import rgb_to_yuv420, yuv420_to_rgb
from vsrt_cli.io.planes import Planes

Precision = Literal["fp32", "fp16", "bf16"]
_DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16}
BF16_CAPABILITY = (8, 0)  # Ampere: bf16 tensor cores; earlier cards emulate it (slowly)


_CUDA_SPEC = re.compile(r"cuda(?::(\d+))?")
DEVICES = "auto, cpu, cuda or cuda:N"


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` (CUDA if present, else CPU), ``cpu``, ``cuda`` or ``cuda:N`` (``cuda`` = the
    current CUDA device, returned with its index). Anything else, a malformed index, an index
    past the last card, and Apple's MPS (not supported) are one-line :class:`ConfigError` s."""
    spec = spec.strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps" or spec.startswith("mps:"):
        raise ConfigError(f"--device {spec}: Apple GPUs (MPS) are not supported; use cpu (or a CUDA GPU: {DEVICES})")
    match = _CUDA_SPEC.fullmatch(spec)
    if match is None:
        raise ConfigError(f"unknown device {spec!r}; use {DEVICES} (N a number from 0, e.g. cuda:0)")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {spec!r} asked for, but no CUDA GPU is available; use --device cpu")
    count = torch.cuda.device_count()
    index = int(match.group(1)) if match.group(1) is not None else torch.cuda.current_device()
    if index >= count:
        raise ConfigError(f"device {spec!r} does not exist: {count} CUDA device(s) here (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 natively (AMX tiles or AVX512-BF16); elsewhere bf16 is
    emulated and slower than fp32."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    try:
        return any(getattr(cpu, name)() for name in checks if hasattr(cpu, name))
    except Exception:  # private helpers: if they change, stay with fp32
        return False


def native_bf16_cuda(device: torch.device) -> bool:
    """Whether ``device`` (not GPU 0) has bf16 tensor cores: compute capability >= 8.0.
    ``torch.cuda.is_bf16_supported()`` also says yes where bf16 is only emulated, and asks about
    the current device."""
    return torch.cuda.get_device_capability(device) >= BF16_CAPABILITY


def default_precision(device: torch.device) -> Precision:
    """The fastest precision that keeps quality (measured in docs/PERFORMANCE.md): on CUDA bf16
    from compute capability 8.0, fp16 below; bf16 on CPUs with native bf16, fp32 on other CPUs."""
    if device.type == "cuda":
        return "bf16" if native_bf16_cuda(device) else "fp16"
    return "bf16" if native_bf16_cpu() else "fp32"


@contextlib.contextmanager
def autocast(device: torch.device, precision: Precision) -> Iterator[None]:
    """Mixed precision for the model call: ``fp32`` changes nothing; ``fp16``/``bf16`` autocast."""
    if precision == "fp32":
        yield
        return
    if precision not in _DTYPES:
        raise ConfigError(f"unknown precision {precision!r}; use fp32, fp16 or bf16")
    if precision == "bf16" and device.type == "cuda" and not native_bf16_cuda(device):
        major, minor = torch.cuda.get_device_capability(device)
        raise ConfigError(
            f"this GPU ({torch.cuda.get_device_name(device)}, compute capability {major}.{minor}) "
            "has no bf16 tensor cores (8.0 or newer); use --precision fp16"
        )
    with torch.autocast(device_type=device.type, dtype=_DTYPES[precision]):
        yield


def configure_device(device: torch.device, precision: Precision, *, deterministic: bool = False) -> torch.device:
    """Process-wide settings for running on ``device``, applied once before the work; returns
    the device with its index (``cuda`` alone means the current card).

    CUDA: the card becomes the current device (kernels, cuDNN handles and the caching allocator
    go to the chosen card, not GPU 0). TF32: ``fp32`` means IEEE fp32, TF32 off for matmuls and
    convolutions (comparable with the goldens and the CPU); under ``fp16``/``bf16`` autocast the
    layers kept in fp32 (stem, flow branches) may use TF32 tensor cores. cuDNN autotunes its
    algorithms per process (tiles have a fixed shape), except with ``deterministic``: where the
    output is promised to equal another run's (``--chunks``, Ray chunks, lossless output), each
    process must pick the same algorithms, so autotuning is off and cuDNN is deterministic.
    The CPU needs nothing here (see :func:`tune_allocator`).
    """
    if device.type != "cuda":
        return device
    if device.index is None:  # set_device refuses an index-less device (ValueError)
        device = torch.device("cuda", torch.cuda.current_device())
    torch.cuda.set_device(device)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    tf32 = precision != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    return device


def channels_last_wins(device: torch.device) -> bool:
    """Whether the model should hold its weights channels-last on ``device``: on this project's
    CPUs oneDNN then skips a layout reorder around every convolution (1.71 -> 1.43 s per call of
    the default model, docs/PERFORMANCE.md); on CUDA, cuDNN's fp16/bf16 tensor-core kernels are
    NHWC."""
    return device.type in ("cpu", "cuda")


# --- the process allocator ---------------------------------------------------------------------

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
_USER_MALLOC_ENV = ("GLIBC_TUNABLES", "MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def tune_allocator() -> bool:
    """Keep freed memory in the process instead of returning it to the OS on every model call.

    glibc serves each allocation over 32 MiB (the model's HR activations, the blend accumulator)
    with a fresh ``mmap`` and gives it back with ``munmap`` when freed, so every call faults in
    and zeroes its pages again: a third of the README job's CPU time was in the kernel, with 12
    million page faults. Here every allocation comes from the heap (``M_MMAP_MAX`` 0), the heap
    top is not trimmed below 1 GiB, and it grows 64 MiB at a time. The working set then stays
    resident (peak RSS about 300 MiB higher at 320x180) and is reused. Applied with ``mallopt``
    at run time, so it works after the interpreter started; left alone where the user set glibc's
    own variables, and where the C library is not glibc. Returns whether it changed anything.
    """
    if any(name in os.environ for name in _USER_MALLOC_ENV) or os.environ.get("VSRT_MALLOC") == "system":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20))
    return all(libc.mallopt(option, value) == 1 for option, value in settings)


# --- running out of memory ---------------------------------------------------------------------

_ALLOCATION_FAILURES = (
    "out of memory",  # CUDA's caching allocator, CUDA runtime errors
    "CUDNN_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_NOT_ENOUGH_WORKSPACE",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "can't allocate memory",  # the CPU allocator ("DefaultCPUAllocator: can't allocate memory")
)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` means an allocation failed: torch's ``OutOfMemoryError``, or the
    ``RuntimeError`` that cuDNN, cuBLAS, the CUDA runtime or the CPU allocator raise instead."""
    # torch.OutOfMemoryError is torch >= 2.5's name for torch.cuda.OutOfMemoryError (1.13+)
    if isinstance(exc, getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(text in str(exc) for text in _ALLOCATION_FAILURES)


def release_memory(device: torch.device) -> None:
    """Give cached device memory back after a failed call. Call it *outside* the ``except``
    block: until that block ends, the traceback still holds the failed call's tensors."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


# --- how much fits -----------------------------------------------------------------------------



def free_memory(device: torch.device) -> int | None:
    """Free bytes on a CUDA device (None on the CPU, where the OS decides); what
    :func:`vsrt_cli.engine.budget.default_tiling` sizes the default tiles by."""
    if device.type != "cuda":
        return None
    return torch.cuda.mem_get_info(device)[0]


# --- frames to and from the device ---------------------------------------------------------------


def upload_frame(image: np.ndarray | Planes, device: torch.device) -> torch.Tensor:
    """``[H, W, 3]`` uint8/uint16 RGB, or 8-bit 4:2:0 :class:`~vsrt_cli.io.planes.Planes`, ->
    ``[3, H, W]`` float32 RGB in [0, 1] on ``device``.

    On CUDA the integer frame (a quarter of the float bytes; planes half the RGB bytes again) is
    copied once, through pinned memory and without blocking the host, and converted on the
    device; frames stay there for every window that uses them. The CPU computes the same
    numbers (``x / 255`` in float32, or the same YUV maths). Out of device memory while
    converting, it converts on the host and copies the float frame over instead (the same
    numbers); out of memory for the frame itself, a one-line :class:`ResourceError`."""
    try:
        return _upload(image, device)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
    release_memory(device)  # outside the except block: the failed attempt's tensors are gone
    try:
        return _upload(image, torch.device("cpu")).to(device)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        raise ResourceError(f"out of {device.type.upper()} memory for one {_image_size(image)} frame; "
                            "free memory on the card or use --device cpu") from None


def _image_size(image: np.ndarray | Planes) -> str:
    h, w = image.y.shape if isinstance(image, Planes) else image.shape[:2]
    return f"{w}x{h}"


def _upload(image: np.ndarray | Planes, device: torch.device) -> torch.Tensor:
    if isinstance(image, Planes):
        y, u, v = (_to_device(plane, device) for plane in (image.y, image.u, image.v))
        rgb = yuv420_to_rgb(y, u, v, image.matrix, image.full_range, image.left, image.top)
        return torch.rot90(rgb, image.rotation // 90, dims=(1, 2)).contiguous() if image.rotation else rgb
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    if device.type != "cuda":
        return torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1) / scale
    host = torch.from_numpy(image.astype(np.int32) if image.dtype == np.uint16 else np.ascontiguousarray(image))
    staged = host.pin_memory().to(device, non_blocking=True)
    return staged.permute(2, 0, 1).float() / scale


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    host = torch.from_numpy(np.ascontiguousarray(array))
    return host.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else host


def copied_event(device: torch.device):
    """An event recorded on the current stream of ``device``, the stream its device-to-host
    copies were queued on; an event recorded without a stream would mark the *current device's*
    stream, and waiting on it would not wait for frames on another card."""
    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(device))
    return event


class Download:
    """HR frames ``[K, 3, H, W]`` in [0, 1] quantised on their device and copied to the host
    without blocking it: the copy runs behind whatever the device does next (the next window).
    :meth:`images` waits for it and gives ``[H, W, 3]`` uint8 RGB (uint16 when ``deep``), or,
    with ``yuv`` ``(matrix, full_range, left)``, 8-bit 4:2:0 :class:`~vsrt_cli.io.planes.Planes`
    converted on the device (half the bytes, and no conversion left for the encoder thread).
    ``finite``: the window's unread finiteness check (``TileRunner.take_check``): its flags come
    over with the frames, and :meth:`images` refuses the frames (raises) before anyone writes them."""

    def __init__(
        self, frames: torch.Tensor, deep: bool, yuv: tuple[int, bool, bool] | None = None,
        finite: tuple[torch.Tensor, Callable[[list[bool]], None]] | None = None,
    ) -> None:
        self.deep = deep
        self.yuv = yuv
        self.event = None
        self.refuse = None if finite is None else finite[1]
        flags = None if finite is None else finite[0]
        try:
            self._start(frames, flags)
            return
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
        # out of device memory quantising: the host does it, as RGB (the encoder converts)
        release_memory(frames.device)  # outside the except block: the failed attempt's tensors are gone
        self.yuv, self.event = None, None
        self._start(frames.cpu(), None if flags is None else flags.cpu())

    def _start(self, frames: torch.Tensor, flags: torch.Tensor | None) -> None:
        deep, yuv = self.deep, self.yuv
        if yuv is not None:
            if deep:
                raise ValueError("YUV downloads are 8-bit")
            on_device: tuple[torch.Tensor, ...] = rgb_to_yuv420(frames, *yuv)
        else:
            peak = 65535.0 if deep else 255.0
            quantised = (frames.float() * peak).round_().permute(0, 2, 3, 1)
            # uint8 goes over the bus; 16-bit values as int32 (CUDA has no uint16 arithmetic)
            on_device = (quantised.to(torch.int32 if deep else torch.uint8).contiguous(),) if frames.device.type == "cuda" else (quantised,)
        self.flags = flags
        if frames.device.type == "cuda":
            self.host = tuple(torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in on_device)
            for host, device_tensor in zip(self.host, on_device):
                host.copy_(device_tensor.contiguous(), non_blocking=True)
            if flags is not None and flags.device.type == "cuda":
                self.flags = torch.empty(flags.shape, dtype=flags.dtype, pin_memory=True)
                self.flags.copy_(flags, non_blocking=True)
            self.event = copied_event(frames.device)
        else:
            self.host = on_device

    def images(self) -> list[np.ndarray] | list[Planes]:
        if self.event is not None:
            self.event.synchronize()
        if self.refuse is not None:
            self.refuse(self.flags.tolist())
        if self.yuv is not None:
            y, u, v = (t.numpy() for t in self.host)
            matrix, full, left = self.yuv
            # copies: the window's pinned buffer is freed now, not when the last frame is encoded
            return [Planes(y[k].copy(), u[k].copy(), v[k].copy(), matrix, full, left=left) for k in range(len(y))]
        array = self.host[0].numpy()
        return list(array.astype(np.uint16 if self.deep else np.uint8))
