"""Fetch a weights file: resumable, hash-checked, never a partial file under the final name.

The download goes to ``NAME.part`` next to the destination; an interrupted one is resumed
with an HTTP Range request (or restarted if the server ignores it); the sha256 is checked
before the file is renamed into place. Work yields progress; the CLI draws it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vsrt_cli.errors import CheckpointError

CHUNK = 1 << 16


@dataclass(frozen=True)
class DownloadProgress:
    done: int
    total: int | None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, sha256: str | None) -> None:
    """Raise :class:`CheckpointError` unless ``path`` hashes to ``sha256`` (None: no check)."""
    if sha256 is None:
        return
    actual = sha256_file(path)
    if actual != sha256.lower():
        raise CheckpointError(
            f"{path} is corrupt or not the expected file: sha256 {actual[:16]}..., expected {sha256[:16]}...; "
            "delete it and download again"
        )


def download(url: str, dest: Path, sha256: str | None = None, *, timeout: float = 30.0) -> Iterator[DownloadProgress]:
    """Download ``url`` to ``dest``; yields progress. Resumes a ``dest.part`` left by an
    interrupted attempt. Raises :class:`CheckpointError` on network or hash failures."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing left to fetch: the part is whole
            response = None
        else:
            raise CheckpointError(f"download of {url} failed: HTTP {exc.code} {exc.reason}; check the URL") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise CheckpointError(f"download of {url} failed: {getattr(exc, 'reason', exc)}; check the URL and your connection") from exc

    if response is not None:
        with response:
            status = getattr(response, "status", None) or 200
            resumed = start > 0 and status == 206
            done = start if resumed else 0
            length = response.headers.get("Content-Length")
            total = done + int(length) if length is not None else None
            try:
                with open(part, "ab" if resumed else "wb") as out:
                    yield DownloadProgress(done, total)
                    while True:
                        block = response.read(CHUNK)
                        if not block:
                            break
                        out.write(block)
                        done += len(block)
                        yield DownloadProgress(done, total)
            except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
                raise CheckpointError(
                    f"download of {url} broke off after {done} bytes ({exc}); run the same command again to resume"
                ) from exc
            if total is not None and done < total:
                raise CheckpointError(
                    f"download of {url} broke off after {done} of {total} bytes; run the same command again to resume"
                )
    try:
        verify(part, sha256)
    except CheckpointError:
        part.unlink(missing_ok=True)
        raise CheckpointError(
            f"the file downloaded from {url} does not have the expected sha256; it was deleted, nothing was installed"
        ) from None
    os.replace(part, dest)
    yield DownloadProgress(dest.stat().st_size, dest.stat().st_size)
