from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from t2f.files.outputs import FILE_MODE, process_umask, write_atomic, write_files

ROOT = Path(__file__).resolve().parent.parent


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("umask", "file_mode", "folder_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_outputs_take_the_modes_the_umask_gives(tmp_path: Path, umask: int, file_mode: int, folder_mode: int) -> None:
    # A fresh process, because the mask is read once at import (as a real run does).
    script = (
        "import os, sys; from pathlib import Path; os.umask(int(sys.argv[2], 8));"
        "from t2f.files.outputs import write_files;"
        "write_files(Path(sys.argv[1]) / 'job' / 'abc', {'face.obj': b'v', 'image.png': b'p'})"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", script, str(tmp_path), oct(umask)], check=True, env=env, timeout=60)
    folder = tmp_path / "job" / "abc"
    assert sorted(p.name for p in folder.iterdir()) == ["face.obj", "image.png"]  # no temporary file left
    assert {mode(folder / name) for name in ("face.obj", "image.png")} == {file_mode}
    assert mode(folder) == folder_mode and mode(tmp_path / "job") == folder_mode
    assert (folder / "face.obj").read_bytes() == b"v"


def test_this_process_writes_with_its_own_umask(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    assert process_umask() == mask
    assert mode_for(mask) == FILE_MODE
    (path,) = write_files(tmp_path / "out", {"preview.jpg": b"x"})
    assert mode(path) == FILE_MODE
    write_atomic(path, b"yy")  # replacing a file keeps the mode and the bytes are new
    assert mode(path) == FILE_MODE and path.read_bytes() == b"yy"


def mode_for(mask: int) -> int:
    return 0o666 & ~mask
