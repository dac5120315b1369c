"""HUIZHEN_TLS_CERT_FILE / HUIZHEN_TLS_KEY_FILE: `huizhen serve` speaks HTTPS and WSS itself.

The certificate is made here (a throwaway CA-less self-signed one for 127.0.0.1); the clients
trust exactly it, so a plaintext or wrongly-keyed server fails the handshake."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import ssl
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.store import Store
from server.store.directory import Role
from tests.conftest import free_port
from tests.integration.conftest import PASSWORD
from tests.integration.serve_process import ServeProcess, short_data_dir

pytestmark = pytest.mark.timeout(120)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "huizhen-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_https_and_wss_with_a_certificate_made_here(password_hash, tmp_path) -> None:
    data_dir = short_data_dir()
    cert, key = make_certificate(tmp_path)
    port = free_port()
    server = ServeProcess(data_dir, port, ServeProcess.environment(
        data_dir, port, HUIZHEN_TLS_CERT_FILE=str(cert), HUIZHEN_TLS_KEY_FILE=str(key)))
    try:
        url = server.start()
        assert url == f"https://127.0.0.1:{port}/"
        store = Store.from_url(f"unix://{data_dir / 'redis' / 'redis.sock'}")
        await store.directory.add_clinic("Qingshui Township", "qingshui")
        await store.directory.add_user("dr.li", role=Role.DOCTOR, password_hash=password_hash,
                                       clinic="qingshui")
        await store.close()

        trust = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as session:
            async with session.get(f"{url}healthz") as resp:
                assert resp.status == 200
                assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
            async with session.post(f"{url}api/auth/login",
                                    json={"username": "dr.li", "password": PASSWORD}) as resp:
                assert resp.status == 200
                token = (await resp.json())["token"]
            async with session.ws_connect(f"wss://127.0.0.1:{port}/api/ws") as ws:
                await ws.send_json({"type": "auth", "token": token})
                ready = await ws.receive_json(timeout=10)
                assert ready["type"] == "ready" and ready["user"] == "dr.li"

        # Plain HTTP on the TLS port is no way in.
        async with aiohttp.ClientSession() as plain:
            with pytest.raises(aiohttp.ClientError):
                async with plain.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    await resp.read()
        # A client that does not trust the certificate refuses it.
        async with aiohttp.ClientSession() as untrusting:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await untrusting.get(f"{url}healthz")
    finally:
        assert server.stop() == 0, server.output()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_half_a_tls_configuration_is_refused(tmp_path) -> None:
    from server.config import Settings
    from server.errors import ConfigurationError

    cert, _ = make_certificate(tmp_path)
    with pytest.raises(ConfigurationError, match="both"):
        Settings.from_env({"HUIZHEN_DATA_DIR": str(tmp_path), "HUIZHEN_SECRET_KEY": "k" * 40,
                           "HUIZHEN_TLS_CERT_FILE": str(cert)})
