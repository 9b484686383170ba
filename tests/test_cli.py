from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_web import loopback_registry, model_viewer_tarball  # noqa: F401  (fixtures)

from t2f import cli, commands


def run_cli(*args: str) -> int:
    return cli.main(list(args))


def test_generate_writes_image_and_metadata(
    tiny_sd: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("T2F_SAFETY_CHECKER", "off")
    out = clean_env / "out"
    code = run_cli(
        "generate",
        "a face",
        "--model",
        str(tiny_sd),
        "--out",
        str(out),
        "--seed",
        "3",
        "--steps",
        "2",
        "--size",
        "64",
        "--image-only",
    )
    assert code == 0
    image = np.asarray(Image.open(out / "image.png"))
    assert image.shape == (64, 64, 3)
    meta = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    assert meta["prompt"] == "a face" and meta["seed"] == 3 and meta["steps"] == 2 and meta["size"] == 64
    assert meta["model"] == {"id": str(tiny_sd), "revision": None}
    assert meta["settings"]["scheduler"] == "dpmpp"
    assert meta["nsfw"] is None and meta["files"] == ["image.png", "metadata.json"]
    assert set(meta["timings_s"]) == {"load", "encode_and_denoise", "decode"}  # no checker: no safety_check
    assert all(v >= 0 for v in meta["timings_s"].values())
    assert "wrote" in capsys.readouterr().out


def test_generate_reports_a_truncated_prompt(
    tiny_sd: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("T2F_SAFETY_CHECKER", "off")
    out = clean_env / "long"
    prompt = "a portrait of a woman " * 9 + "wearing a red scarf"
    assert (
        run_cli(
            "generate",
            prompt,
            "--model",
            str(tiny_sd),
            "--out",
            str(out),
            "--steps",
            "1",
            "--size",
            "64",
            "--image-only",
        )
        == 0
    )
    assert "this part was ignored" in capsys.readouterr().err
    meta = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    assert meta["prompt_truncated"] is True and meta["dropped_prompt"].endswith("red scarf")


def test_flagged_image_is_not_written_and_the_user_is_told(
    tiny_sd: Path, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = clean_env / "flagged"
    code = run_cli(
        "generate", "a face", "--model", str(tiny_sd), "--out", str(out), "--steps", "2", "--size", "64", "--image-only"
    )
    assert code == 1
    assert "safety filter flagged this image" in capsys.readouterr().err
    assert not (out / "image.png").exists()
    assert json.loads((out / "metadata.json").read_text(encoding="utf-8"))["nsfw"] is True


def test_default_hub_model_offline_fails_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "t2f", "generate", "a face", "--image-only"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "HF_HUB_OFFLINE": "1",
            "HOME": str(tmp_path),
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        },  # this tree's code, not an installed copy
    )
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [
        "t2f: error: Model 'CompVis/stable-diffusion-v1-4' (revision main) is not downloaded in the Hugging Face "
        "cache. "
        "Fetch it with: t2f download"
    ]
    assert "Traceback" not in proc.stderr


def test_invalid_setting_stops_with_the_variable_named(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("T2F_SCHEDULER", "fastest")
    assert run_cli("doctor", "--no-smoke") == 2
    assert capsys.readouterr().err.strip() == (
        "t2f: configuration error: T2F_SCHEDULER='fastest' is not allowed; "
        "allowed: dpmpp, pndm, ddim, euler, euler_a, unipc."
    )
    monkeypatch.delenv("T2F_SCHEDULER")
    assert run_cli("generate", "x", "--device", "gpu0") == 2
    assert "T2F_DEVICE='gpu0' is not a device" in capsys.readouterr().err


def test_unexpected_errors_are_one_line_unless_debug(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def explode(settings: object) -> None:
        raise RuntimeError("the GPU caught fire")

    monkeypatch.setattr(commands, "load_text_to_image", explode)
    assert run_cli("generate", "a face", "--image-only") == 1
    err = capsys.readouterr().err
    assert "t2f: error: unexpected RuntimeError: the GPU caught fire (run again with --debug for the traceback)" in err
    assert "Traceback" not in err
    with pytest.raises(RuntimeError, match="caught fire"):
        run_cli("generate", "a face", "--image-only", "--debug")


def test_doctor_reports_missing_weights(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("doctor") == 1
    out = capsys.readouterr().out
    assert "device: cpu" in out
    assert "diffusion model: MISSING" in out and "t2f download" in out
    assert "smoke run: skipped (no weights)" in out
    assert "safety checker: on\n" in out


def test_doctor_warns_when_the_safety_checker_is_off(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from t2f.stages.text2img import SAFETY_OFF

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("T2F_SAFETY_CHECKER", "off")
        run_cli("doctor", "--no-smoke")
    assert f"safety checker: WARNING {SAFETY_OFF}\n" in capsys.readouterr().out


def test_doctor_smoke_runs_a_present_model(
    tiny_sd: Path, prnet_dir: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("T2F_PRNET_DIR", str(prnet_dir))
    assert run_cli("doctor", "--model", str(tiny_sd)) == 0
    out = capsys.readouterr().out
    assert f"diffusion model: {tiny_sd} present" in out
    assert f"PRNet: present at {prnet_dir} (NOT the official weights: PRNet weights were not converted" in out
    assert "smoke run: ok" in out


def test_download_local_folder_and_unreachable_hub(
    tiny_sd: Path,
    prnet_dir: Path,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    network_attempts: list[object],
) -> None:
    from t2f.web.assets import script_path

    monkeypatch.setenv("T2F_PRNET_DIR", str(prnet_dir))  # already complete: nothing to fetch
    monkeypatch.setenv("T2F_CACHE_DIR", str(clean_env / "cache"))
    script_path(clean_env / "cache").parent.mkdir(parents=True)
    script_path(clean_env / "cache").write_text("// the viewer, already downloaded\n", encoding="utf-8")
    assert run_cli("download", "--model", str(tiny_sd)) == 0
    out = capsys.readouterr().out
    assert "local folder, nothing to download" in out and "PRNet:" in out
    assert f"3D viewer @google/model-viewer 4.4.0: {script_path(clean_env / 'cache')}" in out
    assert network_attempts == []  # complete already: no network needed
    assert run_cli("download") == 1
    assert network_attempts  # the hub was tried, refused, and that is one line
    err = capsys.readouterr().err
    assert err.startswith(
        "t2f: error: Could not download 'CompVis/stable-diffusion-v1-4' (revision main): "
        "huggingface.co could not be reached ("
    )
    assert err.strip().endswith("Check the network and try again.") and "offline" not in err
    assert len(err.strip().splitlines()) == 1


def test_download_fetches_the_viewer(
    tiny_sd: Path,
    prnet_dir: Path,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    loopback_registry: str,  # noqa: F811  (a fixture)
) -> None:
    """As t2f/web/assets.py says: `t2f download` fetches the 3D viewer too (checked against its integrity)."""
    from t2f.web.assets import script_path

    monkeypatch.setenv("T2F_PRNET_DIR", str(prnet_dir))
    monkeypatch.setenv("T2F_CACHE_DIR", str(clean_env / "cache"))
    assert run_cli("download", "--model", str(tiny_sd), "--registry", loopback_registry) == 0
    assert f"3D viewer @google/model-viewer 4.4.0: {script_path(clean_env / 'cache')}" in capsys.readouterr().out
    assert script_path(clean_env / "cache").read_bytes().startswith(b"/**")  # the script, unpacked


def test_download_failures_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    from t2f.files.weights import download_failure

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert download_failure("a/b", "main", OSError("x")).endswith(
        "HF_HUB_OFFLINE is set, so nothing can be downloaded. Unset it and try again."
    )
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    class GatedRepoError(Exception):
        pass

    class RepositoryNotFoundError(Exception):
        pass

    assert download_failure("a/b", "main", GatedRepoError("401 Client Error")).endswith(
        "huggingface.co wants a login for it. Accept its licence on huggingface.co, set HF_TOKEN, try again."
    )
    assert download_failure("a/b", "main", RepositoryNotFoundError()).endswith("has no such model. Check T2F_MODEL.")
    long = download_failure("a/b", "main", ValueError("word " * 200))
    assert len(long) < 300 and long.endswith("…. Check the network and the model id.")  # cut between words


def test_check_prompt_prints_a_verdict_and_exits_3_when_refused(
    clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_cli("check-prompt", "a smiling woman with curly hair") == 0
    assert capsys.readouterr().out == "allowed\ta smiling woman with curly hair\n"
    assert run_cli("check-prompt", "a woman", "--negative", "clothes, shirt") == 3
    assert (
        capsys.readouterr().out == "refused\ta woman | clothes, shirt\tsexual (English)\tnegative matches 'clothes'\n"
    )
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("portrait of Al Gore\t\n# a comment\n\u202enamow edun\n"))
    assert run_cli("check-prompt", "-") == 3
    assert capsys.readouterr().out.splitlines() == [
        "allowed\tportrait of Al Gore",
        "refused\tnamow edun\tsexual (English)\tprompt matches 'nude'",  # the override is not echoed
    ]


def test_check_prompt_names_the_category_and_language_and_judges_as_a_strict_server(
    clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("eine nackte Frau am Strand\na woman in a bikini\n裸足の子供\n"))
    assert run_cli("check-prompt", "-") == 3
    assert capsys.readouterr().out.splitlines() == [
        "refused\teine nackte Frau am Strand\tsexual (German)\tprompt matches 'nackte'",
        "allowed\ta woman in a bikini\tsuggestive (English): refused with --refuse-suggestive",
        "allowed\t裸足の子供",  # barefoot: an allow-list phrase holds the word for naked
    ]
    assert run_cli("check-prompt", "a woman in a bikini", "--refuse-suggestive") == 3
    assert capsys.readouterr().out == "refused\ta woman in a bikini\tsuggestive (English)\tprompt matches 'bikini'\n"
    assert run_cli("check-prompt", "a little girl in a bikini") == 3
    assert capsys.readouterr().out.split("\t")[2] == "minors (English)"


def test_check_prompt_uses_the_configured_blocklist(
    clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / "mine.txt").write_text("clown\n", encoding="utf-8")
    monkeypatch.setenv("T2F_BLOCKLIST_FILE", str(clean_env / "mine.txt"))
    assert run_cli("check-prompt", "a sad clown") == 3
    assert run_cli("check-prompt", "a nude mime") == 3  # the file adds to the shipped lexicons
    assert run_cli("check-prompt", "a sad mime") == 0


@pytest.fixture
def no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any model load fails the test: these refusals must come before loading."""

    def explode(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the request was checked")

    monkeypatch.setattr(commands, "load_text_to_image", explode)
    monkeypatch.setattr(commands, "load_face_pipeline", explode)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--steps", "0"), "t2f: error: Steps 0 is not allowed; use 1 to 150."),
        (("--size", "0"), "t2f: error: Image size 0 is not allowed; use 64 to 1024 pixels, a multiple of 8."),
        (("--guidance", "-1"), "t2f: error: Guidance -1 is not allowed; use 0 to 30."),
    ],
)
def test_generate_refuses_bad_values_before_loading(
    args: tuple[str, ...], message: str, clean_env: Path, no_models: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--steps 0` used to run 25 steps (`args.steps or default`); now it is refused in one line, at once,
    with exit code 2 like argparse's own type errors."""
    assert run_cli("generate", "a face", *args) == 2
    assert capsys.readouterr().err.strip() == message


def test_out_that_is_a_file_fails_before_painting(
    clean_env: Path, no_models: None, capsys: pytest.CaptureFixture[str]
) -> None:
    (clean_env / "taken").write_text("x", encoding="utf-8")
    assert run_cli("generate", "a face", "--out", "taken") == 2
    assert capsys.readouterr().err.strip() == (
        "t2f: error: --out taken is a file; give a folder (it is created when missing)."
    )


def test_cuda_without_cuda_is_one_line_and_doctor_fails(
    clean_env: Path, no_models: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert run_cli("generate", "a face", "--device", "cuda") == 2  # was "unexpected AssertionError" after loading
    err = capsys.readouterr().err
    assert err.startswith("t2f: configuration error: T2F_DEVICE=cuda, but ") and len(err.splitlines()) == 1
    monkeypatch.setenv("T2F_DEVICE", "cuda")
    assert run_cli("doctor") == 1  # was exit 0
    out = capsys.readouterr().out
    assert "device: UNAVAILABLE: T2F_DEVICE=cuda, but " in out
    assert "smoke run: skipped (no weights) (no device)" in out


def test_a_huge_prompt_is_not_echoed_whole(
    tiny_sd: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("T2F_SAFETY_CHECKER", "off")
    prompt = "a portrait of a woman " + "with curly hair " * 6250  # 100k characters
    code = run_cli(
        "generate", prompt, "--model", str(tiny_sd), "--out", "big", "--steps", "1", "--size", "64", "--image-only"
    )
    assert code == 0
    err = capsys.readouterr().err
    note = next(line for line in err.splitlines() if line.startswith("note: the prompt was longer"))
    assert len(note) < 400 and note.endswith(" more characters)'")
    assert len(err) < 2000  # was ~100 KB


def test_progress_bars_only_on_a_terminal(tmp_path: Path) -> None:
    """`t2f download` on a terminal shows the hub's bars (size, speed); elsewhere, and for other commands,
    they are off. Off a terminal every tqdm bar is off too (diffusers' "Loading pipeline components")."""
    code = (
        "import sys; from t2f import cli; "
        "cli.quiet_libraries(False, show_downloads=sys.argv[1] == 'download', terminal=sys.argv[2] == 'tty'); "
        "from huggingface_hub.utils import are_progress_bars_disabled; from tqdm.auto import tqdm; "
        "print(are_progress_bars_disabled(), tqdm(total=1, file=open('/dev/null', 'w')).disable)"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    shown = [
        subprocess.run(
            [sys.executable, "-c", code, command, where], capture_output=True, text=True, env=env, timeout=60
        ).stdout.split()
        for command, where in (("download", "tty"), ("generate", "tty"), ("download", "log"), ("generate", "log"))
    ]
    assert shown == [["False", "False"], ["True", "False"], ["True", "True"], ["True", "True"]]


def test_eval_faces_reports_the_yield(
    tiny_sd: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tiny random model paints noise: every image fails the gate, and the report says so and why."""
    prompts = clean_env / "prompts.txt"
    prompts.write_text("# two faces\na smiling woman\n\nan old man\n", encoding="utf-8")
    monkeypatch.setenv("T2F_SAFETY_CHECKER", "off")
    monkeypatch.setenv("T2F_MAX_REPAINTS", "1")
    out_file = clean_env / "yield.md"
    code = run_cli(
        "eval-faces",
        str(prompts),
        "--runs",
        "2",
        "--steps",
        "2",
        "--size",
        "64",
        "--model",
        str(tiny_sd),
        "--out",
        str(out_file),
    )
    assert code == 0
    report = capsys.readouterr().out
    assert "| trials (prompts x runs) | 4 |" in report
    assert "| usable first time | 0/4 (0 %) |" in report and "| images painted | 8 |" in report
    assert "| no face was found | 8 |" in report
    assert out_file.read_text(encoding="utf-8") == report
    assert run_cli("eval-faces", "missing.txt") == 2
    assert capsys.readouterr().err == "t2f: error: The prompt list missing.txt does not exist.\n"


def test_the_shipped_prompt_list_has_100_prompts() -> None:
    from t2f.evaluate import read_prompts

    root = Path(__file__).resolve().parents[1]
    prompts = read_prompts((root / "bench" / "face_prompts.txt").read_text(encoding="utf-8").splitlines())
    assert len(prompts) == 100 and len(set(prompts)) == 100
