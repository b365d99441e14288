import os
import tempfile
from pathlib import Path

import pytest

# Before anything imports Prefect: its home (database, results) lives in a throwaway directory,
# and nothing phones home from this offline machine.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="deimos-prefect-home-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ["DVC_NO_ANALYTICS"] = "1"

# -- tests marked `cuda` (tests/cuda; `make gpu-check`) -----------------------------------------

#: The device the `cuda` tests run on: "cuda" (default) or "cpu", which dry-runs them on the CPU
#: (CPU compared with CPU) to check the test code on a machine without a GPU. The same variable
#: is read by `benchmarks.gpu_check`.
CHECK_DEVICE_ENV = "DEIMOS_CHECK_DEVICE"
NO_CUDA_REASON = (
    "no CUDA device: torch.cuda.is_available() is False "
    f"(set {CHECK_DEVICE_ENV}=cpu to dry-run these tests on the CPU)"
)


def _check_device_name() -> str:
    name = os.environ.get(CHECK_DEVICE_ENV, "cuda")
    if name not in ("cuda", "cpu"):
        raise pytest.UsageError(f"{CHECK_DEVICE_ENV} must be 'cuda' or 'cpu', got {name!r}")
    return name


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every `cuda` test, with the reason, when there is no CUDA device to run it on.

    torch is imported only when such a test was collected, so other runs do not pay for it.
    """
    cuda_items = [item for item in items if item.get_closest_marker("cuda")]
    if not cuda_items or _check_device_name() == "cpu":
        return
    import torch

    if not torch.cuda.is_available():
        for item in cuda_items:
            item.add_marker(pytest.mark.skip(reason=NO_CUDA_REASON))


@pytest.fixture(scope="session")
def check_device():
    """The `torch.device` a `cuda` test runs on (CUDA, or CPU under DEIMOS_CHECK_DEVICE=cpu)."""
    import torch

    return torch.device(_check_device_name())


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect server (SQLite) for the whole session; yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()


# -- a real S3 server (SeaweedFS) -------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """One SeaweedFS `weed mini` for the session, on free loopback ports; stopped at the end.

    It accepts only the test credentials (`seaweed.TEST_ACCESS_KEY_ID`/`TEST_SECRET_ACCESS_KEY`),
    which the `s3_env` fixture puts in the environment.
    """
    from tests.helpers.seaweed import SeaweedServer

    server = SeaweedServer(tmp_path_factory.mktemp("seaweed"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(monkeypatch):
    """AWS settings for one test: the test credentials, and nothing from the developer's machine
    (no ~/.aws profile, no instance-metadata lookups), and checksums only where S3 requires them
    (boto3 >= 1.36 otherwise sends headers SeaweedFS rejects)."""
    from tests.helpers.seaweed import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY

    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    missing = str(Path(tempfile.gettempdir()) / "deimos-no-aws-config")
    monkeypatch.setenv("AWS_CONFIG_FILE", missing)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", missing)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")


@pytest.fixture
def s3_bucket(s3_server, s3_env):
    """A fresh, empty bucket on the session's server, so tests never see each other's objects."""
    import uuid

    return s3_server.create_bucket(f"t-{uuid.uuid4().hex[:24]}")
