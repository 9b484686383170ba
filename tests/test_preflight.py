"""Checks that need no model: each problem is one sentence naming the variable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from t2f.config import Settings
from t2f.errors import ConfigError
from t2f.preflight import check_blocklist, check_db_path, check_device, check_settings


def message(check: object, *args: object) -> str:
    with pytest.raises(ConfigError) as caught:
        check(*args)  # type: ignore[operator]
    return caught.value.user_message


def test_blocklist_must_exist_be_a_file_and_utf8(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    assert message(check_blocklist, str(missing)) == (
        f"T2F_BLOCKLIST_FILE={missing} does not exist; point it at your word list or leave it empty."
    )
    assert message(check_blocklist, str(tmp_path)).endswith(
        "is not a file; point it at your word list or leave it empty."
    )
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    assert message(check_blocklist, str(tmp_path / "latin1.txt")).endswith("is not UTF-8 text; save it as UTF-8.")
    (tmp_path / "ok.txt").write_text("clown\n", encoding="utf-8")
    check_blocklist(str(tmp_path / "ok.txt"))
    check_blocklist("")  # the built-in list


def test_db_path_must_be_a_writable_file(tmp_path: Path) -> None:
    assert message(check_db_path, tmp_path) == (
        f"T2F_DB_PATH={tmp_path} is a folder; point it at a file, e.g. {tmp_path / 't2f.sqlite3'}."
    )
    (tmp_path / "file").write_text("x", encoding="utf-8")
    assert message(check_db_path, tmp_path / "file" / "t2f.sqlite3") == (
        f"T2F_DB_PATH={tmp_path / 'file' / 't2f.sqlite3'} is inside {tmp_path / 'file'}, which is a file, not a folder."
    )
    if sys.platform == "linux":  # /proc refuses new files even to root, where permission bits would not
        assert message(check_db_path, Path("/proc/t2f.sqlite3")) == (
            "T2F_DB_PATH=/proc/t2f.sqlite3 is not writable here; point it at a folder this user may write."
        )
    check_db_path(tmp_path / "new" / "folder" / "t2f.sqlite3")  # the store creates missing folders
    assert not (tmp_path / "new").exists()  # ... the check does not


def test_cuda_without_cuda_is_refused_clearly() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    text = message(check_device, "cuda")
    assert text.startswith("T2F_DEVICE=cuda, but ")
    assert "set T2F_DEVICE=auto" in text and "\n" not in text
    check_device("auto")
    check_device("cpu")


def test_check_settings_runs_every_check(tmp_path: Path) -> None:
    settings = Settings(db_path=tmp_path / "t2f.sqlite3", output_dir=tmp_path / "out", blocklist_file=str(tmp_path))
    assert message(check_settings, settings).startswith("T2F_BLOCKLIST_FILE=")
    check_settings(Settings(db_path=tmp_path / "t2f.sqlite3", output_dir=tmp_path / "out"), device=False)
