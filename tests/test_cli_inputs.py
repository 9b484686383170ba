"""The command line checks before it works: every bad input below is one line on stderr and exit 2
(3 for a refused prompt), before any model loads, and nothing is read that is not a regular file."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from t2f import build, cli, commands


def run_cli(*args: str) -> int:
    return cli.main(list(args))


@pytest.fixture
def no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any model load fails the test: these refusals must come before loading."""

    def explode(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(commands, "load_text_to_image", explode)
    monkeypatch.setattr(commands, "load_face_pipeline", explode)
    monkeypatch.setattr(build, "load_route", explode)


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err.rstrip("\n")


# -- input files -----------------------------------------------------------------------------------------


def test_reconstruct_refuses_dev_zero_at_once(
    clean_env: Path, no_models: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to read /dev/zero until the machine ran out of memory (20 GB when it was killed)."""
    assert run_cli("reconstruct", "/dev/zero") == 2
    assert one_line(capsys) == (
        "t2f: error: The image /dev/zero is not a regular file (a device, pipe or socket); give a file."
    )


def test_reconstruct_refuses_pipes_folders_missing_and_huge_files(
    clean_env: Path, no_models: None, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(clean_env / "pipe.png")  # nobody writes to it: opening it must not wait for a writer
    (clean_env / "folder.png").mkdir()
    with open(clean_env / "huge.png", "wb") as huge:
        huge.truncate(1 << 30)  # sparse: 1 GiB that takes no disk
    refused = {
        "pipe.png": "The image pipe.png is not a regular file (a device, pipe or socket); give a file.",
        "folder.png": "The image folder.png is a folder; give a file.",
        "missing.png": "The image missing.png does not exist.",
        "huge.png": "The image huge.png is 1,024.0 MiB; the most t2f reads is 320.0 MiB.",
    }
    for name, message in refused.items():
        assert run_cli("reconstruct", name) == 2, name
        assert one_line(capsys) == f"t2f: error: {message}"


def test_a_file_that_is_not_an_image_is_a_bad_input(
    clean_env: Path, no_models: None, capsys: pytest.CaptureFixture[str]
) -> None:
    (clean_env / "notes.png").write_text("hello, not an image", encoding="utf-8")
    assert run_cli("reconstruct", "notes.png") == 2
    assert one_line(capsys).startswith("t2f: error: That file is not an image t2f can read")


def test_eval_faces_refuses_a_device_as_its_prompt_list(
    clean_env: Path, no_models: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("eval-faces", "/dev/zero") == 2
    assert one_line(capsys) == (
        "t2f: error: The prompt list /dev/zero is not a regular file (a device, pipe or socket); give a file."
    )


# -- --out ---------------------------------------------------------------------------------------------------


def test_out_must_be_creatable(clean_env: Path, no_models: None, capsys: pytest.CaptureFixture[str]) -> None:
    (clean_env / "taken").write_text("x", encoding="utf-8")
    refused = {
        "taken/face": f"--out taken/face cannot be created: {clean_env / 'taken'} is a file, not a folder.",
        "taken/a/b": f"--out taken/a/b cannot be created: {clean_env / 'taken'} is a file, not a folder.",
        "/proc/t2f-out": "--out /proc/t2f-out cannot be written: this user may not create files in /proc.",
    }
    for out, message in refused.items():
        assert run_cli("generate", "a face", "--out", out) == 2, out
        assert one_line(capsys) == f"t2f: error: {message}"
    photo = clean_env / "photo.png"
    photo.write_bytes(b"\x89PNG not really")
    assert run_cli("reconstruct", str(photo), "--out", "taken/x") == 2  # the image is judged first
    assert one_line(capsys).startswith("t2f: error: That file is not an image")
    assert run_cli("prnet", "import", "ckpt", "--out", "/proc/prnet") == 2
    assert one_line(capsys).endswith("--out /proc/prnet cannot be written: this user may not create files in /proc.")
    assert not (clean_env / "taken").is_dir()  # nothing was created


# -- t2f serve: host and port --------------------------------------------------------------------------


def test_serve_checks_host_and_port_before_loading(
    clean_env: Path, no_models: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = {
            ("--port", "70000"): "t2f serve cannot listen on 127.0.0.1:70000: that is not a port; use 1 to 65535.",
            ("--port", "-1"): "t2f serve cannot listen on 127.0.0.1:-1: that is not a port; use 1 to 65535.",
            (
                "--host",
                "192.0.2.1",
            ): "t2f serve cannot listen on 192.0.2.1:8080: the host is not an address of this machine.",
            ("--port", str(port)): (
                f"t2f serve cannot listen on 127.0.0.1:{port}: "
                "the port is in use (another server, or another t2f, listens there)."
            ),
        }
        for args, message in refused.items():
            assert run_cli("serve", *args) == 2, args
            assert one_line(capsys) == f"t2f: error: {message}"


def test_serve_checks_the_metrics_port_too(
    clean_env: Path, no_models: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("T2F_METRICS_PORT", "9100")
    assert run_cli("serve", "--port", "9100") == 2
    assert one_line(capsys) == (
        "t2f: error: T2F_METRICS_PORT=9100 is also the web port; give the metrics a port of their own."
    )
    monkeypatch.setenv("T2F_METRICS_HOST", "192.0.2.1")
    assert run_cli("serve", "--port", "0") == 2
    assert one_line(capsys) == (
        "t2f: error: The metrics cannot listen on 192.0.2.1:9100: the host is not an address of this machine."
    )


# -- .env --------------------------------------------------------------------------------------------------


def test_env_file_problems_are_one_line(clean_env: Path, no_models: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("check-prompt", "a smiling woman", "--env-file", "prod.env") == 2
    assert one_line(capsys) == "t2f: configuration error: The settings file prod.env does not exist."
    (clean_env / "bad.env").write_text("T2F_STEPS=20\nT2F_MODEL='unclosed\n", encoding="utf-8")
    assert run_cli("check-prompt", "a smiling woman", "--env-file", "bad.env") == 2
    assert one_line(capsys) == (
        "t2f: configuration error: bad.env line 2 is not NAME=value; check its quotes and its '='."
    )
    (clean_env / ".env").write_text("DISCORD_TOKEN=abc\nT2F_STEPS\n", encoding="utf-8")
    assert run_cli("check-prompt", "a smiling woman") == 2
    assert one_line(capsys) == (
        "t2f: configuration error: .env line 2 has no '=': write T2F_STEPS=value, or remove it."
    )


def test_an_unknown_setting_is_a_warning_with_a_suggestion(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (clean_env / ".env").write_text("T2F_GUILD_ID=123\n", encoding="utf-8")
    assert run_cli("check-prompt", "a smiling woman") == 0  # a warning, not an error
    captured = capsys.readouterr()
    assert captured.err == (
        "t2f: warning: .env line 1: T2F_GUILD_ID is not a t2f setting and is ignored; did you mean T2F_GUILD_IDS?\n"
    )
    assert captured.out == "allowed\ta smiling woman\n"


def test_range_errors_exit_2_like_type_errors(
    clean_env: Path, no_models: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as typed:
        run_cli("generate", "a face", "--steps", "many")
    assert typed.value.code == 2
    capsys.readouterr()
    assert run_cli("generate", "a face", "--steps", "500") == 2
    assert one_line(capsys) == "t2f: error: Steps 500 is not allowed; use 1 to 150."
    monkeypatch.setenv("T2F_STEPS", "500")
    assert run_cli("generate", "a face") == 2
    assert one_line(capsys) == "t2f: configuration error: T2F_STEPS=500 is out of range; allowed: 5..50."


# -- the prompt filter on t2f generate -------------------------------------------------------------------


def test_generate_applies_the_prompt_filter_unless_told_not_to(
    clean_env: Path, no_models: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("generate", "a portrait photo of a naked woman") == 3
    assert one_line(capsys) == (
        "t2f: refused: The prompt filter refuses this prompt (sexual, en; t2f check-prompt shows why); "
        "--no-filter paints it anyway."
    )
    assert run_cli("generate", "a portrait photo", "--negative", "clothes") == 3
    assert "refuses this negative prompt" in one_line(capsys)
    # --no-filter goes on to load the models (which this test forbids, so it stops there).
    assert run_cli("generate", "a portrait photo of a naked woman", "--no-filter") == 1
    assert "a model was loaded before the input was checked" in one_line(capsys)


# -- progress bars ---------------------------------------------------------------------------------------


def test_no_progress_bar_reaches_a_log(tiny_sd: Path, tmp_path: Path) -> None:
    """Off a terminal (stderr to a file or a pipe), diffusers' loading bar and the denoising bar stay away."""
    import subprocess
    import sys

    command = ["generate", "a face", "--model", str(tiny_sd), "--steps", "2", "--size", "64", "--image-only"]
    proc = subprocess.run(
        [sys.executable, "-m", "t2f", *command, "--out", "out", "--seed", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "HF_HUB_OFFLINE": "1",
            "T2F_SAFETY_CHECKER": "off",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        },
    )
    assert proc.returncode == 0, proc.stderr
    from t2f.stages.text2img import SAFETY_OFF

    (line,) = proc.stderr.splitlines()  # the checker is off, and the one line says so: no progress bar
    assert line.endswith(f"WARNING t2f.stages.text2img: {SAFETY_OFF}")
    assert proc.stdout.startswith("wrote image.png, metadata.json to out (seed 1)")
