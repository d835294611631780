"""A throwaway PostgreSQL on a loopback TCP port that tests may stop and start at will.

By default it uses the server binaries the pgserver wheel ships, so it needs nothing from the
system (they are built without TLS; `system_bin_dir()` finds Debian's, which have it). As root it
runs them as the unprivileged user pgserver creates, since PostgreSQL refuses root.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pgserver._commands import POSTGRES_BIN_PATH  # the binaries inside the pgserver wheel
from pgserver.utils import ensure_user_exists

from tests.support.servers import free_port

SERVICE_USER = "pgserver"


def system_bin_dir() -> Path | None:
    """The newest PostgreSQL server installed by the system's packages, if any."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


class PgCluster:
    """initdb, start, stop, start again, destroy: one PostgreSQL data folder on 127.0.0.1:`port`."""

    def __init__(self, *, tls: bool = False, bin_dir: Path = POSTGRES_BIN_PATH) -> None:
        self.bin_dir = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="todo-pg-"))
        self.dir.chmod(0o755)
        self.data = self.dir / "data"
        self.port = free_port()
        self.user = SERVICE_USER if os.geteuid() == 0 else None
        if self.user is not None:
            ensure_user_exists(self.user)
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.options = f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
        if tls:
            self._self_signed_certificate()
            self.options += " -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        kwargs: dict[str, Any] = {"user": self.user} if self.user else {}
        subprocess.run(
            [str(self.bin_dir / tool), *args],
            check=True,
            capture_output=True,
            timeout=60,
            cwd=self.dir,
            **kwargs,
        )

    def start(self) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", self.options, "-l", str(self.dir / "log"), "-w", "start"
        )

    def _self_signed_certificate(self) -> None:
        """A throwaway certificate for 127.0.0.1, so the server can speak TLS."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        for name_, content, mode in (
            ("server.crt", certificate.public_bytes(serialization.Encoding.PEM), 0o644),
            ("server.key", key_pem, 0o600),
        ):
            path = self.data / name_
            path.write_bytes(content)
            path.chmod(mode)
            if self.user is not None:
                entry = pwd.getpwnam(self.user)
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def pgbouncer(cluster: PgCluster, dbname: str) -> Iterator[str]:
    """Debian's pgbouncer in transaction mode in front of `dbname`; yields its URL. Skips without it."""
    import pytest

    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        pytest.skip("pgbouncer is not installed (.ci/run installs Debian's pgbouncer)")
    folder = Path(tempfile.mkdtemp(prefix="todo-bouncer-"))
    folder.chmod(0o777)
    port = free_port()
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
{dbname} = host=127.0.0.1 port={cluster.port} dbname={dbname} user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = 4
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
"""
    )
    kwargs: dict[str, Any] = {"user": cluster.user} if cluster.user else {}
    proc = subprocess.Popen(
        [binary, str(folder / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **kwargs,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "pgbouncer exited"
                assert time.monotonic() < deadline, "pgbouncer did not listen"
                time.sleep(0.1)
        yield f"postgresql://postgres@127.0.0.1:{port}/{dbname}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
