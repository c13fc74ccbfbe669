"""Attacks from outside: each test talks to the production server (``python -m telemetry.server``)
over real sockets, as a hostile client would, directly or through the shipped nginx configuration."""

import datetime
import functools
import shutil
import ssl
import subprocess
from contextlib import contextmanager

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.server import ROOT, unused_port, wait_for_port


def _self_signed(directory) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (directory / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "privkey.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@contextmanager
def running_nginx(directory, web_port: int):
    """nginx (Debian's) with deploy/nginx/telemetry.conf as shipped, but for its addresses (the web
    service on ``web_port``, HTTPS on a free port of 127.0.0.1 with a certificate made here) and
    HTTP/2's older spelling. Yields the HTTPS port."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    directory.mkdir(parents=True, exist_ok=True)
    _self_signed(directory)
    http_port, https_port = unused_port(), unused_port()
    site = (ROOT / "deploy" / "nginx" / "telemetry.conf").read_text()
    for shipped, here in (
        ("server web:8080;", f"server 127.0.0.1:{web_port};"),
        ("server web:8081;", f"server 127.0.0.1:{web_port};"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        # Debian's nginx 1.22 predates the ``http2`` directive (1.25): its listen flag.
        ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("http2 on;", ""),
        ("/etc/nginx/certs/", f"{directory}/"),
    ):
        assert shipped in site, shipped
        site = site.replace(shipped, here)
    (directory / "telemetry.conf").write_text(site)
    (directory / "nginx.conf").write_text(f"""
user root;
worker_processes 1;
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    include {directory}/telemetry.conf;
}}
""")
    process = subprocess.Popen(
        [nginx, "-p", str(directory), "-c", str(directory / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(https_port)
        yield https_port
    finally:
        process.terminate()
        process.wait(timeout=20)


@functools.cache
def tls_client() -> ssl.SSLContext:
    """For the certificate made above, which nothing signed. One context for every connection: making
    one loads the system's certificate store (about 40 ms), 256 times in each slow-client test."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
