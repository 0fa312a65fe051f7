import pytest


@pytest.fixture
def dbdir(tmp_path):
    """A path for a database directory (missing: open creates it)."""
    return tmp_path / "db"
