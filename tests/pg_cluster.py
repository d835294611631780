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
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from pgserver._commands import POSTGRES_BIN_PATH  # the binaries inside the pgserver wheel
from pgserver.utils import ensure_user_exists

from tests.support import free_port

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
