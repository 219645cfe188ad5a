"""Weights downloads against a real HTTP server on 127.0.0.1: resume, restart, hash checks."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vsrt_cli.zoo.download import download, sha256_file
from vsrt_cli.errors import CheckpointError

PAYLOAD = bytes(range(256)) * 1000  # 256,000 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Serves PAYLOAD at /w.pth. ``cut_after`` drops the connection after that many bytes of
    the next response; ``ranges`` False ignores Range headers (always 200, whole file)."""

    def __init__(self) -> None:
        self.cut_after: int | None = None
        self.ranges = True
        self.requests: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                if self.path != "/w.pth":
                    self.send_error(404)
                    return
                wanted = self.headers.get("Range")
                server.requests.append(wanted)
                start = int(wanted[6:-1]) if wanted and server.ranges else 0
                body = PAYLOAD[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                self.end_headers()
                if server.cut_after is not None:
                    self.wfile.write(body[: server.cut_after])
                    server.cut_after = None
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/w.pth"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def test_download_verifies_and_renames(server, tmp_path):
    dest = tmp_path / "w.pth"
    events = list(download(server.url, dest, SHA))
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "w.pth.part").exists()
    assert events[-1].done == len(PAYLOAD) and events[1].total == len(PAYLOAD)
    assert [e.done for e in events] == sorted(e.done for e in events)


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    dest = tmp_path / "w.pth"
    server.cut_after = 100_000
    with pytest.raises(CheckpointError, match="run the same command again to resume"):
        list(download(server.url, dest, SHA))
    assert not dest.exists()
    assert (tmp_path / "w.pth.part").stat().st_size == 100_000
    list(download(server.url, dest, SHA))
    assert server.requests == [None, "bytes=100000-"]
    assert sha256_file(dest) == SHA


def test_server_without_ranges_restarts_cleanly(server, tmp_path):
    dest = tmp_path / "w.pth"
    (tmp_path / "w.pth.part").write_bytes(b"stale bytes from elsewhere")
    server.ranges = False
    list(download(server.url, dest, SHA))
    assert dest.read_bytes() == PAYLOAD


def test_wrong_hash_installs_nothing(server, tmp_path):
    dest = tmp_path / "w.pth"
    with pytest.raises(CheckpointError, match="expected sha256; it was deleted"):
        list(download(server.url, dest, "0" * 64))
    assert list(tmp_path.iterdir()) == []


def test_bad_urls_are_explained(server, tmp_path):
    with pytest.raises(CheckpointError, match="HTTP 404"):
        list(download(server.url.replace("w.pth", "nope.pth"), tmp_path / "x.pth"))
    with pytest.raises(CheckpointError, match="check the URL"):
        list(download("http://127.0.0.1:9/none.pth", tmp_path / "y.pth", timeout=2))
    assert list(tmp_path.iterdir()) == []
