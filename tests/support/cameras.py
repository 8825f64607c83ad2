"""A small real HTTP camera for tests: MJPEG streams and a snapshot URL of real JPEG frames.

It can require Basic authentication, pause (a stall), inject a corrupt part, die and come
back on the same port.
"""

from __future__ import annotations

import base64
import http.server
import threading
import time
from pathlib import Path

import cv2

BOUNDARY = "atcsframe"


def clip_jpegs(clip: Path, count: int = 20) -> list[bytes]:
    """The first ``count`` frames of a real clip, JPEG-encoded."""
    cap = cv2.VideoCapture(str(clip))
    out: list[bytes] = []
    while len(out) < count:
        ok, image = cap.read()
        if not ok:
            raise AssertionError(f"clip {clip.name} too short")
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        assert ok
        out.append(buf.tobytes())
    cap.release()
    return out


class CameraServer:
    """A small HTTP camera: /stream.mjpg, /stream-nolength.mjpg, /snapshot.jpg, /video."""

    def __init__(
        self, jpegs: list[bytes], port: int, fps: float = 15.0, auth: str | None = None
    ) -> None:
        self.jpegs = jpegs
        self.port = port
        self.fps = fps
        self.auth = auth  # "user:password" required when set
        self.alive = True
        self.paused = threading.Event()
        self.corrupt_parts = 0
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CameraServer:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _authorised(self) -> bool:
                if server.auth is None:
                    return True
                token = base64.b64encode(server.auth.encode()).decode()
                if self.headers.get("Authorization") == f"Basic {token}":
                    return True
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="camera"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return False

            def do_GET(self) -> None:
                with server._lock:
                    server.requests.append(self.path)
                if not self._authorised():
                    return
                if self.path in ("/snapshot.jpg", "/video"):
                    self._snapshot()
                elif self.path in ("/stream.mjpg", "/stream-nolength.mjpg"):
                    self._stream(with_length=self.path == "/stream.mjpg")
                else:
                    self.send_error(404)

            def _snapshot(self) -> None:
                body = server.jpegs[len(server.requests) % len(server.jpegs)]
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, with_length: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                i = 0
                try:
                    while server.alive:
                        if server.paused.is_set():
                            time.sleep(0.02)
                            continue
                        body = server.jpegs[i % len(server.jpegs)]
                        if server.corrupt_parts > 0:
                            server.corrupt_parts -= 1
                            body = b"\xff\xd8" + b"\x00garbage" * 50
                        head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                        if with_length:
                            head += f"Content-Length: {len(body)}\r\n"
                        self.wfile.write(head.encode() + b"\r\n" + body + b"\r\n")
                        self.wfile.flush()
                        i += 1
                        time.sleep(1.0 / server.fps)
                except (BrokenPipeError, ConnectionResetError):
                    return

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self.alive = True
        self._thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Die: stop accepting, close the listening socket and end open streams."""
        self.alive = False
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5.0)
