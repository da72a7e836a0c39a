"""Real receivers on 127.0.0.1 for the notification tests: an HTTP server and TLS material."""

from __future__ import annotations

import datetime as dt
import json
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int] | None = None  # the client's address: one per connection


@dataclass
class Receiver:
    port: int
    requests: list[Received] = field(default_factory=list)
    scheme: str = "http"

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


def _lower(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.receiver.requests.append(
            Received(self.path, _lower(self.headers.items()), body, self.client_address[:2])
        )
        path = self.path
        if path == "/ok":
            self._reply(200, b"thanks")
        elif path == "/no-content":
            self._reply(204)
        elif path == "/fail":
            self._reply(500, b"boom: database is down")
        elif path == "/binary":
            self._reply(500, b"bad \xff\xfe bytes")
        elif path == "/gone":
            self._reply(410, b"endpoint removed")
        elif path == "/retry-seconds":
            self._reply(429, b"slow down", {"Retry-After": "120"})
        elif path == "/retry-date":
            when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=300)
            self._reply(503, b"maintenance", {"Retry-After": format_datetime(when, usegmt=True)})
        elif path == "/redirect":
            self._reply(302, b"", {"Location": "/ok"})
        elif path == "/slow":
            time.sleep(1.5)
            self._reply(200, b"too late")
        elif path == "/slow-body":
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.write(b"12345")
            time.sleep(1.5)
            self.wfile.write(b"67890")
        elif path == "/big":
            self._reply(500, b"x" * 100_000)
        elif path == "/cookie":
            self._reply(200, b"", {"Set-Cookie": "session=abc; Path=/"})
        elif path == "/echo":
            self._reply(200, json.dumps(_lower(self.headers.items())).encode())
        else:
            self._reply(404, b"no such route")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that time out leave broken pipes behind; that is expected here


@dataclass
class TlsMaterial:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem.decode())

    def server_context(self, tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
        directory = tmp_path_factory.mktemp("tls")
        (directory / "cert.pem").write_bytes(self.cert_pem)
        (directory / "key.pem").write_bytes(self.key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(directory / "cert.pem", directory / "key.pem")
        return ctx


def make_tls(hostname: str) -> TlsMaterial:
    """A throwaway CA and a leaf certificate for ``hostname`` signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kassa test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return TlsMaterial(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def _serve(server_context: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    server = _Server(("127.0.0.1", 0), _Handler)
    if server_context is not None:
        server.socket = server_context.wrap_socket(server.socket, server_side=True)
    receiver = Receiver(port=server.server_address[1], scheme="https" if server_context else "http")
    server.receiver = receiver
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from _serve()


@pytest.fixture(scope="session")
def tls_material() -> TlsMaterial:
    return make_tls("hook.example")


@pytest.fixture
def tls_receiver(tls_material: TlsMaterial, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    yield from _serve(tls_material.server_context(tmp_path_factory))
