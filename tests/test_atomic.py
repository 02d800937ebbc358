"""The one atomic writer: a failed write leaves the old file and no temporary file behind."""

import json

import pytest

from gns.atomic import atomic_path, write_json_atomic, write_text_atomic


def test_success_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "a.json"
    write_json_atomic(path, {"x": 1})
    write_json_atomic(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 2}
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.txt"
    write_text_atomic(path, "old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_suffix_is_kept_last_for_writers_that_read_it(tmp_path):
    with atomic_path(tmp_path / "movie.gif", suffix=".gif") as tmp:
        assert tmp.name.endswith(".gif") and tmp.name.startswith(".movie.gif.")
        tmp.write_bytes(b"GIF89a")
    assert (tmp_path / "movie.gif").read_bytes() == b"GIF89a"
