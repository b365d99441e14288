"""deimos.atomic: the old file or the new one, never half of one, and no temp files left."""

from __future__ import annotations

import pytest

from deimos.atomic import replacing, write_text_atomic


def test_failed_block_leaves_target_untouched_and_no_temp(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="disk full"), replacing(target) as tmp:
        tmp.write_text("half a ta")
        raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_successful_write_replaces_content(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old\n")
    write_text_atomic(target, "new\r\nrow\n")
    assert target.read_bytes() == b"new\r\nrow\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]
