"""TLS: ``sslmode=verify-full`` against a throwaway cluster with a CA made by the test.

The test makes its own certificate authority and a server certificate for
``localhost`` and ``127.0.0.1`` (the ``cryptography`` package), starts a
PostgreSQL 15 cluster with ``ssl=on`` on a free port of 127.0.0.1 (tests/_cluster.py),
and shows that the saver connects with the right CA and host name, that a wrong
CA, a wrong host name, or ``sslmode=require`` against a server without TLS
fail at once with a pgcheckpoint error that does not contain the password, and
that ``health_check()`` reports the encryption.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import _cluster

x509 = pytest.importorskip("cryptography.x509", reason="the cryptography package is needed")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from pgcheckpoint import PostgresSaver  # noqa: E402
from pgcheckpoint.errors import PgCheckpointError, TransientStorageError  # noqa: E402
from pgcheckpoint.retry import RetryPolicy  # noqa: E402

pytestmark = pytest.mark.skipif(
    not _cluster.available(), reason=f"PostgreSQL server binaries not found in {_cluster.BIN}"
)

PASSWORD = "tls-secret-Pa55"  # in every DSN; must never appear in an error
SCRAM_USER = "scram_user"
_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def make(cls, name: str) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
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
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def issue_server(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A server certificate for localhost and 127.0.0.1."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + _DAY)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        return key, cert

    def write(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path


@dataclass(frozen=True)
class TlsServer:
    cluster: _cluster.Cluster
    ca_file: Path
    other_ca_file: Path

    def dsn(self, **params: str) -> str:
        base = {
            "host": "127.0.0.1",
            "port": str(self.cluster.port),
            "user": "postgres",
            "dbname": "postgres",
            "password": PASSWORD,
            "connect_timeout": "5",
        }
        base.update(params)
        return " ".join(f"{k}={v}" for k, v in base.items())


def _start(ssl: bool, tmp: Path) -> Iterator[tuple[_cluster.Cluster, Path, Path]]:
    ca, other = Authority.make("pgcheckpoint test CA"), Authority.make("some other CA")
    settings: dict[str, str] = {}
    cluster = _cluster.Cluster.create()
    if ssl:
        key, cert = ca.issue_server()
        key_file, cert_file = cluster.root / "server.key", cluster.root / "server.crt"
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        for f in (key_file, cert_file):
            os.chmod(f, 0o600)
            _cluster._own(f)
        settings = {"ssl": "on", "ssl_cert_file": f"'{cert_file}'", "ssl_key_file": f"'{key_file}'"}
        cluster.configure(settings)
        # A SCRAM login over TLS only, for channel binding (first match wins in pg_hba).
        hba = cluster.data / "pg_hba.conf"
        hba.write_text(f"hostssl all {SCRAM_USER} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    try:
        cluster.start()
        if ssl:
            with psycopg.connect(cluster.url(), autocommit=True) as conn:
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                        sql.Identifier(SCRAM_USER), sql.Literal(PASSWORD)
                    )
                )
        yield cluster, ca.write(tmp / "ca.pem"), other.write(tmp / "other-ca.pem")
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    tmp = tmp_path_factory.mktemp("tls")
    for cluster, ca, other in _start(True, tmp):
        yield TlsServer(cluster, ca, other)


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    tmp = tmp_path_factory.mktemp("plain")
    for cluster, ca, other in _start(False, tmp):
        yield TlsServer(cluster, ca, other)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_verify_full_connects_with_the_right_ca_and_host(tls_server: TlsServer, host: str) -> None:
    dsn = tls_server.dsn(host=host, sslmode="verify-full", sslrootcert=str(tls_server.ca_file))
    with PostgresSaver.from_conn_string(dsn) as saver:
        saver.setup()
        report = saver.health_check()
    assert report.ok, report.error
    assert report.ssl is True
    assert report.ssl_protocol is not None and report.ssl_protocol.startswith("TLSv1.")
    assert report.ssl_cipher and report.ssl_bits and report.ssl_bits >= 128


def test_health_reports_an_unencrypted_connection(plain_server: TlsServer) -> None:
    with PostgresSaver.from_conn_string(plain_server.dsn(sslmode="disable")) as saver:
        report = saver.health_check()
    assert report.ssl is False and report.ssl_protocol is None and report.ssl_cipher is None


def _refused(dsn: str) -> PgCheckpointError:
    """The error of a first use of a saver on ``dsn`` (retries on: must not matter)."""
    with (
        pytest.raises(PgCheckpointError) as err,
        PostgresSaver.from_conn_string(dsn, retry=RetryPolicy(deadline=60)) as saver,
    ):
        saver.setup()
    # Not transient: a certificate or TLS refusal does not pass by retrying, so it
    # is raised at the first attempt rather than after the retry deadline.
    assert not isinstance(err.value, TransientStorageError), err.value
    assert PASSWORD not in str(err.value) and PASSWORD not in repr(err.value)
    return err.value


def test_wrong_ca_is_refused(tls_server: TlsServer) -> None:
    dsn = tls_server.dsn(sslmode="verify-full", sslrootcert=str(tls_server.other_ca_file))
    assert "certificate verify failed" in str(_refused(dsn))


def test_wrong_host_name_is_refused(tls_server: TlsServer) -> None:
    # hostaddr is where libpq connects; host is the name the certificate must carry.
    dsn = tls_server.dsn(
        host="db.example.com",
        hostaddr="127.0.0.1",
        sslmode="verify-full",
        sslrootcert=str(tls_server.ca_file),
    )
    assert "does not match host name" in str(_refused(dsn))


def test_require_against_a_server_without_tls_is_refused(plain_server: TlsServer) -> None:
    error = _refused(plain_server.dsn(sslmode="require"))
    assert "SSL" in str(error)


def test_channel_binding_with_scram_over_verify_full(tls_server: TlsServer) -> None:
    dsn = tls_server.dsn(
        user=SCRAM_USER,
        sslmode="verify-full",
        sslrootcert=str(tls_server.ca_file),
        channel_binding="require",
    )
    with PostgresSaver.from_conn_string(dsn) as saver:
        saver.setup()
        report = saver.health_check()
    assert report.ok and report.ssl is True and report.role == SCRAM_USER


def test_channel_binding_required_but_not_done_is_refused(plain_server: TlsServer) -> None:
    # The server without TLS lets us in without SCRAM: no channel binding took place.
    error = _refused(plain_server.dsn(sslmode="disable", channel_binding="require"))
    assert "channel binding" in str(error)


def test_cluster_tools_present() -> None:
    assert shutil.which(str(_cluster.BIN / "pg_ctl"))
