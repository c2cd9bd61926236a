"""TLS to PostgreSQL, chosen by POSTGRES_SSLMODE as libpq chooses it,
against a private server that serves TLS with a certificate issued here
(for "localhost", by a throwaway authority), and against the plain test
server."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Iterator, Optional
from uuid import uuid4

import pytest
from eventsourcing_rs.application import Application
from eventsourcing_rs.domain import Aggregate
from eventsourcing_rs.persistence import InterfaceError, InvalidSetting

from . import pg_server

ROOT = Path(__file__).resolve().parent.parent
PORT = "5441"

x509 = pytest.importorskip("cryptography.x509")


class Authority:
    """A certificate authority of its own, and certificates it issues."""

    def __init__(self, name: str):
        from cryptography.hazmat.primitives.asymmetric import ec

        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
        self.name = subject
        self.certificate = (
            self._builder(subject, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, _sha256())
        )

    def _builder(self, subject: x509.Name, public_key: object) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
        )

    def issue(self, dns_name: str) -> tuple[bytes, bytes]:
        """A server certificate for ``dns_name`` and its key, as PEM."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, dns_name)])
        certificate = (
            self._builder(subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
            .sign(self.key, _sha256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return _pem(certificate), key_pem

    def pem(self) -> bytes:
        return _pem(self.certificate)


def _sha256() -> object:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def _pem(certificate: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Path]]:
    """A private server serving TLS with a certificate for "localhost";
    the authority that issued it, and another that did not."""
    if shutil.which("pg_ctl") is None and not list(Path("/usr/lib/postgresql").glob("*/bin")):
        if os.environ.get("ESRS_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed")
        pytest.skip("PostgreSQL is not installed")
    files = tmp_path_factory.mktemp("tls")
    authority, stranger = Authority("esrs test authority"), Authority("some other authority")
    cert, key = authority.issue("localhost")
    (files / "server.crt").write_bytes(cert)
    (files / "server.key").write_bytes(key)
    (files / "root.crt").write_bytes(authority.pem())
    (files / "other-root.crt").write_bytes(stranger.pem())
    data = Path(f"/tmp/esrs-pg-tls-{os.getpid()}")
    env = dict(
        os.environ,
        ESRS_PG_DATA=str(data),
        ESRS_PG_PORT=PORT,
        ESRS_PG_SSL_CERT=str(files / "server.crt"),
        ESRS_PG_SSL_KEY=str(files / "server.key"),
    )
    script = ["bash", str(ROOT / "tests" / "pg_server.sh")]
    subprocess.run([*script, "start"], env=env, check=True, capture_output=True)
    try:
        yield {"root": files / "root.crt", "other_root": files / "other-root.crt"}
    finally:
        subprocess.run([*script, "stop"], env=env, capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


class Note(Aggregate):
    def __init__(self, text: str):
        self.text = text


def application(
    sslmode: Optional[str], host: str = "localhost", port: str = PORT, **tls: str
) -> Application:
    env = {**pg_server.application_env(port), "POSTGRES_HOST": host}
    if sslmode is not None:
        env["POSTGRES_SSLMODE"] = sslmode
    env.update(tls)
    return Application(env={**env, "CREATE_TABLE": "no"})


def uses_tls(app: Application) -> bool:
    """Whether the application's own session to the server is encrypted,
    as the server sees it."""
    datastore = app.recorder.datastore  # type: ignore[attr-defined]
    said = datastore._native.query_text(
        "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()", [], "checking TLS"
    )
    return said == "true"


def round_trip(app: Application) -> None:
    """A save and a read back, through the application's recorder."""
    app.recorder.create_table()  # type: ignore[attr-defined]
    note = Note(f"over TLS {uuid4()}")
    app.save(note)
    assert app.repository.get(note.id).text == note.text


def test_verify_full_checks_the_authority_and_the_name(tls_server: Dict[str, Path]) -> None:
    app = application("verify-full", POSTGRES_SSLROOTCERT=str(tls_server["root"]))
    round_trip(app)
    assert uses_tls(app)


def test_verify_full_refuses_a_certificate_for_another_name(tls_server: Dict[str, Path]) -> None:
    # Issued for "localhost", reached as 127.0.0.1: verify-ca accepts it,
    # verify-full does not.
    root = str(tls_server["root"])
    accepted = application("verify-ca", host="127.0.0.1", POSTGRES_SSLROOTCERT=root)
    assert uses_tls(accepted)
    refused = application("verify-full", host="127.0.0.1", POSTGRES_SSLROOTCERT=root)
    with pytest.raises(InterfaceError) as info:
        refused.recorder.max_notification_id()
    message = str(info.value)
    assert f"127.0.0.1:{PORT}" in message and "certificate" in message, message


def test_an_unknown_authority_is_refused(tls_server: Dict[str, Path]) -> None:
    for mode in ("verify-ca", "verify-full", "require"):
        app = application(mode, POSTGRES_SSLROOTCERT=str(tls_server["other_root"]))
        with pytest.raises(InterfaceError) as info:
            app.recorder.max_notification_id()
        message = str(info.value)
        assert f"localhost:{PORT}" in message and "certificate" in message, (mode, message)


def test_require_and_prefer_encrypt_without_checking(tls_server: Dict[str, Path]) -> None:
    for mode in ("require", "prefer", None):
        app = application(mode, host="127.0.0.1")
        round_trip(app)
        assert uses_tls(app), mode
    plain = application("disable", host="127.0.0.1")
    assert not uses_tls(plain)


def test_transactions_through_psycopg_use_the_same_tls(tls_server: Dict[str, Path]) -> None:
    pytest.importorskip("psycopg")
    app = application("verify-full", POSTGRES_SSLROOTCERT=str(tls_server["root"]))
    datastore = app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=False) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cursor.fetchone()[0] is True


def test_require_against_a_server_without_tls_names_the_server() -> None:
    pg_server.require_server()
    app = application("require", host="127.0.0.1", port=pg_server.settings()["port"])
    with pytest.raises(InterfaceError) as info:
        app.recorder.max_notification_id()
    message = str(info.value)
    assert "127.0.0.1:" in message and "TLS" in message, message
    # Preferred, TLS falls back to a plain session on such a server.
    assert not uses_tls(application("prefer", host="127.0.0.1", port=pg_server.settings()["port"]))


def test_bad_tls_settings_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(InvalidSetting, match="POSTGRES_SSLMODE='sometimes'"):
        application("sometimes")
    missing = tmp_path / "no-such-root.crt"
    with pytest.raises(InvalidSetting) as info:
        application("verify-full", POSTGRES_SSLROOTCERT=str(missing))
    assert "POSTGRES_SSLMODE='verify-full'" in str(info.value)
    assert str(missing) in str(info.value)
    not_pem = tmp_path / "not-a-certificate.crt"
    not_pem.write_text("hello")
    with pytest.raises(InvalidSetting, match="not-a-certificate"):
        application("verify-ca", POSTGRES_SSLROOTCERT=str(not_pem))
    with pytest.raises(InvalidSetting, match="together"):
        application("require", POSTGRES_SSLCERT=str(not_pem))
