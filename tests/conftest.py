import os
import sys
import tempfile
from pathlib import Path

import pytest

# tests/ holds shared oracles (dense_reference.py) and campaign helpers (lab_loop_helpers.py).
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Before anything imports Prefect: its home (database, results) lives in a throwaway directory,
# and nothing phones home from this offline machine.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="deimos-prefect-home-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ["DVC_NO_ANALYTICS"] = "1"


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect server (SQLite) for the whole session; yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()
