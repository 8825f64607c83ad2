"""HTTP camera sources: MJPEG streams (``multipart/x-mixed-replace``) and snapshot URLs.

Read with :mod:`urllib` (Basic and Digest authentication from the URL's user info, which
is stripped from the request URL and never logged) and decoded with ``cv2.imdecode``.
Every socket read is bounded by ``timeout_s``; a part that trickles in slower than that is
a stall too.
"""

from __future__ import annotations

import http.client
import logging
import time
import urllib.error
import urllib.request
from email.message import Message

import cv2
import numpy as np

from atcs.errors import SourceError
from atcs.sources.grabber import CorruptFrameError, StalledError, as_bgr
from atcs.sources.kinds import SourceKind
from atcs.sources.redact import redact_text, redact_url, strip_userinfo
from atcs.types import Image

logger = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 32 * 1024 * 1024
"""Largest single JPEG accepted, bytes (a bound on memory per camera)."""

_MAX_LINE = 8192
_MAX_PREAMBLE_BYTES = 256 * 1024
_USER_AGENT = "atcs-camera-reader/1"


def _opener(url: str) -> tuple[urllib.request.OpenerDirector, str]:
    """Build an opener answering Basic and Digest challenges with the URL's credentials."""
    clean, user, password = strip_userinfo(url)
    handlers: list[urllib.request.BaseHandler] = []
    if user is not None:
        manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        manager.add_password(None, clean, user, password or "")
        handlers += [
            urllib.request.HTTPBasicAuthHandler(manager),
            urllib.request.HTTPDigestAuthHandler(manager),
        ]
    return urllib.request.build_opener(*handlers), clean


def _error_text(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, TimeoutError):
        return f"no data for {timeout_s:g} s"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return f"no answer within {timeout_s:g} s"
        text = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
        return f"cannot connect: {redact_text(str(text))}"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed in the middle of a frame"
    if isinstance(exc, http.client.HTTPException | ConnectionError):
        return f"connection lost ({type(exc).__name__})"
    return redact_text(f"{type(exc).__name__}: {exc}")


class HttpGrabber:
    """An MJPEG stream or a snapshot URL.

    As ``MJPEG`` it keeps one response open and reads one multipart part per
    :meth:`grab`; a URL that answers a single image instead is polled as a snapshot URL.
    As ``SNAPSHOT`` each :meth:`grab` is one GET.
    """

    def __init__(self, url: str, kind: SourceKind, timeout_s: float = 10.0) -> None:
        if kind not in (SourceKind.MJPEG, SourceKind.SNAPSHOT):
            raise SourceError(f"HttpGrabber cannot read {kind.value} sources")
        self._opener, self._url = _opener(url)
        self._shown = redact_url(url)
        self._kind = kind
        self._timeout_s = timeout_s
        self._response: http.client.HTTPResponse | None = None
        self._boundary = b""
        self._at_part_headers = False
        self._data: bytes | None = None
        self._pending: bytes | None = None

    @property
    def kind(self) -> SourceKind:
        """MJPEG or SNAPSHOT (an MJPEG URL answering single images becomes SNAPSHOT)."""
        return self._kind

    @property
    def is_pull(self) -> bool:
        """True for snapshot URLs (one GET per frame)."""
        return self._kind is SourceKind.SNAPSHOT

    @property
    def native_fps(self) -> float | None:
        """Unknown for HTTP sources."""
        return None

    @property
    def offset_s(self) -> float | None:
        """None: HTTP sources are live."""
        return None

    def _get(self) -> http.client.HTTPResponse:
        request = urllib.request.Request(  # noqa: S310 (camera URLs are http(s) by design)
            self._url, headers={"User-Agent": _USER_AGENT}
        )
        try:
            response = self._opener.open(request, timeout=self._timeout_s)
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            raise SourceError(f"{self._shown}: {_error_text(exc, self._timeout_s)}") from None
        if not isinstance(response, http.client.HTTPResponse):
            response.close()
            raise SourceError(f"{self._shown}: not an HTTP source")
        return response

    def open(self) -> None:
        """Connect; for MJPEG check the multipart type, for snapshots fetch a first image."""
        response = self._get()
        ctype = response.headers.get_content_type()
        if ctype.startswith("multipart/"):
            boundary = response.headers.get_param("boundary")
            if not isinstance(boundary, str) or not boundary.strip("-"):
                response.close()
                raise SourceError(f"{self._shown}: multipart stream without a boundary")
            if self._kind is SourceKind.SNAPSHOT:
                logger.info("%s: answers an MJPEG stream; reading it as one", self._shown)
                self._kind = SourceKind.MJPEG
            self._boundary = boundary.strip().strip('"').strip("-").encode("latin-1")
            self._response = response
            self._at_part_headers = False
            return
        try:
            body = self._read_body(response)
        finally:
            response.close()
        if self._kind is SourceKind.MJPEG:
            if not ctype.startswith("image/"):
                raise SourceError(f"{self._shown}: expected an MJPEG stream, got {ctype!r}")
            logger.info("%s: answers single images; polling it as a snapshot URL", self._shown)
            self._kind = SourceKind.SNAPSHOT
        self._pending = body

    def _read_body(self, response: http.client.HTTPResponse) -> bytes:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > MAX_IMAGE_BYTES:
            raise SourceError(f"{self._shown}: image of {length} bytes is over the limit")
        try:
            body = response.read(MAX_IMAGE_BYTES + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise self._read_error(exc) from None
        if len(body) > MAX_IMAGE_BYTES:
            raise SourceError(f"{self._shown}: image over {MAX_IMAGE_BYTES} bytes")
        return body

    def _read_error(self, exc: BaseException) -> SourceError:
        text = f"{self._shown}: {_error_text(exc, self._timeout_s)}"
        return StalledError(text) if isinstance(exc, TimeoutError) else SourceError(text)

    def grab(self) -> bool:
        """Read the next image's bytes; False when the MJPEG stream ends."""
        if self._kind is SourceKind.SNAPSHOT:
            if self._pending is not None:
                self._data, self._pending = self._pending, None
                return True
            response = self._get()
            try:
                self._data = self._read_body(response)
            finally:
                response.close()
            return True
        if self._response is None:
            raise SourceError("grab() before open()")
        try:
            part = self._next_part(self._response)
        except (OSError, http.client.HTTPException) as exc:
            raise self._read_error(exc) from None
        if part is None:
            return False
        self._data = part
        return True

    def _is_boundary(self, line: bytes) -> bool:
        stripped = line.strip()
        return stripped.startswith(b"--") and stripped.strip(b"-") == self._boundary

    def _next_part(self, response: http.client.HTTPResponse) -> bytes | None:
        """Read one part's body from the multipart stream; None at its end."""
        deadline = time.monotonic() + self._timeout_s
        if not self._at_part_headers:
            skipped = 0
            while True:
                line = response.readline(_MAX_LINE)
                if not line:
                    return None
                if self._is_boundary(line):
                    if line.strip().endswith(b"--" + self._boundary + b"--"):
                        return None
                    break
                skipped += len(line)
                if skipped > _MAX_PREAMBLE_BYTES:
                    raise SourceError(f"{self._shown}: no multipart boundary in the stream")
                self._check_deadline(deadline)
        headers = Message()
        while True:
            line = response.readline(_MAX_LINE)
            if not line:
                return None
            if not line.strip():
                break
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                headers[name.strip()] = value.strip()
            self._check_deadline(deadline)
        self._at_part_headers = False
        length = headers.get("Content-Length")
        if length is not None and length.strip().isdigit():
            size = int(length)
            if size > MAX_IMAGE_BYTES:
                raise SourceError(f"{self._shown}: part of {size} bytes is over the limit")
            data = response.read(size)
            if len(data) < size:
                return None
            return data
        return self._read_to_boundary(response, deadline)

    def _read_to_boundary(self, response: http.client.HTTPResponse, deadline: float) -> bytes:
        """Read a part without Content-Length up to (and including) the next boundary."""
        chunks: list[bytes] = []
        size = 0
        while True:
            line = response.readline(_MAX_LINE)
            if not line:
                break
            if self._is_boundary(line):
                self._at_part_headers = True
                break
            chunks.append(line)
            size += len(line)
            if size > MAX_IMAGE_BYTES:
                raise SourceError(f"{self._shown}: part over {MAX_IMAGE_BYTES} bytes")
            self._check_deadline(deadline)
        data = b"".join(chunks)
        return data.removesuffix(b"\r\n").removesuffix(b"\n")

    def _check_deadline(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise StalledError(f"{self._shown}: no complete frame for {self._timeout_s:g} s")

    def retrieve(self) -> Image:
        """Decode the last image read."""
        if self._data is None:
            raise SourceError("retrieve() before grab()")
        buffer = np.frombuffer(self._data, dtype=np.uint8)
        try:
            image = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
        except cv2.error:
            image = None
        if image is None:
            raise CorruptFrameError(f"{self._shown}: undecodable image ({buffer.size} bytes)")
        return as_bgr(image, self._shown)

    def close(self) -> None:
        """Close the open stream, if any."""
        if self._response is not None:
            self._response.close()
            self._response = None
        self._data = None
        self._pending = None
