"""Real Mosquitto brokers for tests, on free loopback ports with throwaway folders.

:class:`Mosquitto` runs Debian's ``mosquitto`` with a generated config: anonymous, with a
user name and password (a ``mosquitto_passwd`` file), or with TLS (a throwaway CA, server
and client certificate made with ``openssl``; client certificates optionally required); or
with a config of the test's own (``template``, e.g. the shipped one with throwaway paths).
A broker can be killed (SIGKILL, as a crash), stopped (SIGTERM) and started again on the
same port and data folder mid-test; :meth:`Mosquitto.save` (SIGUSR1) writes its
persistence file, so sessions survive a later kill.

Fixtures: ``mosquitto`` (a plain broker), ``mosquitto_factory`` (brokers with options),
``tls_files`` (the certificates, made once per session). Every broker a test started is
stopped at the test's end.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.net import HOST, free_port, port_open
from tests.support.process import stop_process
from tests.support.wait import poll

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a throwaway CA, a server certificate for 127.0.0.1/localhost and a client."""

    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_file: Path


def _run(args: list[str], cwd: Path) -> None:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed: {proc.stderr.strip()}")


def _make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, crt = folder / f"{name}.key", folder / f"{name}.crt"
    _run(
        [OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", f"/CN={name}"],
        folder,
    )  # fmt: skip
    return key, crt


def _make_cert(folder: Path, name: str, ca: tuple[Path, Path], san: str) -> tuple[Path, Path]:
    key, csr, crt = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.crt"
    ext = folder / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n")
    _run(
        [OPENSSL, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}"],
        folder,
    )  # fmt: skip
    _run(
        [OPENSSL, "x509", "-req", "-in", str(csr), "-CA", str(ca[1]), "-CAkey", str(ca[0]),
         "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext)],
        folder,
    )  # fmt: skip
    return key, crt


def make_tls_files(folder: Path) -> TlsFiles:
    """Make a CA, a server certificate (localhost, 127.0.0.1), a client one and a foreign CA."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = _make_ca(folder, "atcs-test-ca")
    server_key, server_crt = _make_cert(folder, "server", ca, "DNS:localhost,IP:127.0.0.1")
    client_key, client_crt = _make_cert(folder, "client", ca, "DNS:atcs-client")
    _, other_crt = _make_ca(folder, "other-ca")
    return TlsFiles(ca[1], server_crt, server_key, client_crt, client_key, other_crt)


class Mosquitto:
    """One Mosquitto broker on ``127.0.0.1:port`` (see the module docstring)."""

    def __init__(
        self,
        folder: Path,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: TlsFiles | None = None,
        require_client_cert: bool = False,
        persistence: bool = False,
        template: str | None = None,
    ) -> None:
        if not os.path.exists(MOSQUITTO):
            pytest.fail("mosquitto not found: install Debian's 'mosquitto' package")
        self.host = HOST
        self.port = free_port()
        self.folder = folder
        self.username = username
        self.password = password
        self.tls = tls
        self.persistence = persistence
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self.log_file = folder / "mosquitto.log"
        self.conf_file = folder / "mosquitto.conf"
        lines = [
            f"listener {self.port} {HOST}",
            f"allow_anonymous {'false' if username else 'true'}",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {folder}/",
            "autosave_interval 0",
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "max_queued_messages 100000",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        if username is not None:
            pwfile = folder / "passwords"
            pwfile.write_text("")
            subprocess.run(
                [MOSQUITTO_PASSWD, "-b", str(pwfile), username, password or ""],
                check=True,
                capture_output=True,
            )
            lines.append(f"password_file {pwfile}")
        if tls is not None:
            lines += [
                f"cafile {tls.ca_file}",
                f"certfile {tls.server_cert}",
                f"keyfile {tls.server_key}",
                f"require_certificate {'true' if require_client_cert else 'false'}",
            ]
        if template is not None:  # a whole config of its own: {port} and {folder} filled in
            lines = [
                *template.format(port=self.port, folder=folder).splitlines(),
                f"log_dest file {self.log_file}",
                *(["user root"] if os.geteuid() == 0 else []),
            ]
        self.conf_file.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the broker and wait until its port accepts connections."""
        if self.running:
            return
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                pytest.fail(f"mosquitto exited at start: {err}\n{self.log_text()[-2000:]}")
            if port_open(self.port):
                return
            time.sleep(0.02)
        self.kill()
        pytest.fail(f"mosquitto did not listen on {self.port}: {self.log_text()[-2000:]}")

    def kill(self) -> None:
        """Kill the broker with SIGKILL (a crash: nothing is saved)."""
        self._signal_and_wait(signal.SIGKILL)

    def stop(self) -> None:
        """Stop the broker with SIGTERM (saves its persistence file when enabled)."""
        self._signal_and_wait(signal.SIGTERM)

    def restart(self) -> None:
        """Start again on the same port, config and data folder."""
        self.start()

    def save(self, timeout_s: float = 5.0) -> None:
        """Make the broker write its persistence file now (SIGUSR1) and wait for it."""
        if not self.persistence or self.proc is None:
            raise RuntimeError("save() needs a running broker with persistence")
        db = self.folder / "mosquitto.db"
        before = db.stat().st_mtime_ns if db.exists() else 0
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if db.exists() and db.stat().st_mtime_ns != before:
                time.sleep(0.05)
                return
            time.sleep(0.02)
        pytest.fail("mosquitto did not write its persistence file")

    def _signal_and_wait(self, sig: int) -> None:
        stop_process(self.proc, sig, timeout_s=10)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def log_text(self) -> str:
        """The broker's log so far."""
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""


MosquittoFactory = Callable[..., Mosquitto]


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """Throwaway CA, server and client certificates (made once per test session)."""
    return make_tls_files(tmp_path_factory.mktemp("mqtt-tls"))


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[MosquittoFactory]:
    """Start brokers with options (see :class:`Mosquitto`); all are stopped at the end."""
    brokers: list[Mosquitto] = []

    def make(**options: object) -> Mosquitto:
        broker = Mosquitto(tmp_path / f"mosquitto-{len(brokers)}", **options)  # type: ignore[arg-type]
        brokers.append(broker)
        broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.kill()


@pytest.fixture
def mosquitto(mosquitto_factory: MosquittoFactory) -> Mosquitto:
    """A plain anonymous broker on a free loopback port."""
    return mosquitto_factory()


def random_password() -> str:
    """A throwaway password for an authenticated broker."""
    return secrets.token_urlsafe(16)


class BrokerAddress(Protocol):
    """Where a broker listens: a :class:`Mosquitto` of the suite, or one a script started."""

    @property
    def host(self) -> str:
        """Host name or address."""
        ...

    @property
    def port(self) -> int:
        """TCP port."""
        ...


@dataclass(frozen=True)
class Received:
    """One message a :class:`Collector` got."""

    topic: str
    payload: bytes
    retain: bool


class Collector:
    """A real paho subscriber that records every message on ``topic_filter``.

    With ``persistent`` it uses a fixed client id and a persistent session and subscribes
    only when the broker has no session for it (so a restored session is not re-subscribed
    and retained copies are not replayed).
    """

    def __init__(
        self,
        broker: BrokerAddress,
        topic_filter: str,
        *,
        persistent: bool = False,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.topic_filter = topic_filter
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"collector-{secrets.token_hex(4)}",
            clean_session=not persistent,
        )
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls is not None:
            self.client.tls_set(
                ca_certs=str(tls.ca_file),
                certfile=str(tls.client_cert),
                keyfile=str(tls.client_key),
            )
        self.client.connect_async(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            pytest.fail("the test subscriber could not subscribe")

    def _on_connect(self, client, userdata, flags, reason_code, properties):  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            return
        if flags.session_present:
            self.subscribed.set()
        else:
            client.subscribe(self.topic_filter, qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):  # type: ignore[no-untyped-def]
        self.subscribed.set()

    def _on_message(self, client, userdata, msg):  # type: ignore[no-untyped-def]
        with self._lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))

    def snapshot(self) -> list[Received]:
        """A copy of what arrived so far."""
        with self._lock:
            return list(self.messages)

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout_s: float) -> bool:
        """Wait until ``predicate(messages)`` holds; False on timeout."""
        return poll(lambda: predicate(self.snapshot()), timeout_s, 0.05)

    def close(self) -> None:
        """Disconnect and stop."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def collectors() -> Iterator[list[Collector]]:
    """A list a test appends its :class:`Collector` objects to; all closed at the end."""
    made: list[Collector] = []
    yield made
    for c in made:
        c.close()
