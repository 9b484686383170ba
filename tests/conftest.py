"""Shared fixtures: the ../shared data folder and tiny models built at test time."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from discord_fixtures import PhotoTextToImage

    from t2f.config import Settings
    from t2f.serve.store import Store
    from t2f.stages.pipeline import FacePipeline

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Tests never reach a model hub: everything loads from folders built here or from ../shared.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under `make test`'s workers (pytest-xdist) each process gets its share of the cores for torch's OpenMP
# threads (read when torch loads, after this): two workers each running a thread per core would wait on each
# other (the README's "Run the tests" gives the timings). Subprocesses the tests start inherit it.
if (workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT")) is not None:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(workers))))


# How long SimCord waits for the bot to settle after each action. Its own default (5 s) is a wall-clock bound a
# busy 2-core CI machine can miss while a face's files are written; settling ends as soon as the bot is idle, so
# a long bound costs nothing and only catches a bot that never settles.
SETTLE_S = 120.0
# Files whose tests take minutes on 2 cores (compiling the tiny models cold). They run first, so that under
# `make test`'s two workers (pytest-xdist, one file per worker at a time, in this order: the Makefile turns
# off xdist's own order, most tests first) the other worker takes the rest beside them instead of both
# waiting on them at the end.
LONGEST_FIRST = ("test_compile.py", "test_gpu_bench.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in LONGEST_FIRST)  # stable: each file keeps its order
    for item in items:
        if item.get_closest_marker("simcord") is None:
            item.add_marker(pytest.mark.simcord(settle_timeout=SETTLE_S))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's shared data (T2F_SHARED_DIR, default ../shared beside the project root)."""
    folder = Path(os.environ.get("T2F_SHARED_DIR", PROJECT_ROOT.parent / "shared")).resolve()
    if not folder.is_dir():
        pytest.skip(f"shared data folder {folder} is absent; set T2F_SHARED_DIR (CI provides it)")
    return folder


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SD 1.x pipeline folder whose safety checker flags every image."""
    from tiny_models import build_tiny_sd_pipeline

    return build_tiny_sd_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def prnet_checkpoint(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TF checkpoint with the official PRNet variable names and shapes, filled with random values."""
    from prnet_tf_reference import random_variables, read_variable_shapes, write_tf_checkpoint

    prefix = tmp_path_factory.mktemp("prnet-ckpt") / "random_resfcn256_weight"
    shapes = read_variable_shapes(shared_dir / "docs" / "prnet-checkpoint-variables.tsv")
    write_tf_checkpoint(prefix, random_variables(shapes, seed=0))
    return prefix


@pytest.fixture(scope="session")
def prnet_dir(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A PRNet folder as `t2f prnet import --uv-data` makes it: random weights, the real UV data.

    Imported from a random TF checkpoint where TensorFlow is installed (CI has it). A GPU host's Python
    has no TensorFlow: there the same random network is saved straight from PyTorch.
    """
    from t2f.stages.prnet.assets import PRNetAssets, install_uv_data
    from t2f.stages.prnet.checkpoint import import_tf_checkpoint

    folder = tmp_path_factory.mktemp("prnet")
    if importlib.util.find_spec("tensorflow") is not None:
        import_tf_checkpoint(request.getfixturevalue("prnet_checkpoint"), folder)
    else:
        save_random_prnet(folder)
    install_uv_data(folder, assets=PRNetAssets(), source=shared_dir / "prnet" / "uv-data")
    return folder


def save_random_prnet(folder: Path) -> None:
    """``model.safetensors`` + ``config.json`` of a randomised ResFCN256, without TensorFlow."""
    from dataclasses import asdict

    from safetensors.torch import save_file
    from tiny_models import randomised_resfcn256

    from t2f.files.outputs import json_bytes
    from t2f.stages.prnet.checkpoint import CONFIG_FILE, WEIGHTS_FILE, PRNetConfig, file_sha256

    state = {k: v for k, v in randomised_resfcn256(0).state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    config = PRNetConfig(sha256=file_sha256(folder / WEIGHTS_FILE), source="random (no TensorFlow)")
    (folder / CONFIG_FILE).write_bytes(json_bytes(asdict(config)))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No T2F_* variables from the developer's shell, a working directory with no .env, and a Hugging Face
    home of its own (the default cache, and PRNet's default folder in it, must not be the developer's)."""
    for name in list(os.environ):
        if name.startswith("T2F_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture
def network_attempts(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Hub offline mode lifted, and every name lookup or connection recorded and refused.

    What a call tries on the network is then the product's own doing, not the test setting's.
    """
    import socket

    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    attempts: list[object] = []

    def refuse_lookup(host: object, *args: object, **kwargs: object) -> list[object]:
        attempts.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "network disabled in tests")

    def refuse_connect(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise ConnectionRefusedError("network disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse_lookup)
    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    return attempts


# -- the bot in SimCord (tests/test_discord*.py) ----------------------------------------------------


@pytest.fixture(scope="session")
def stages(prnet_dir: Path) -> FacePipeline:
    """PRNet (random weights), UV data and MTCNN, loaded once for every bot in the session."""
    from t2f.build import load_face_pipeline
    from t2f.config import Settings

    return load_face_pipeline(Settings(prnet_dir=str(prnet_dir)), crop="detect")


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    from t2f.serve.store import Store

    opened = await Store.open(tmp_path / "t2f.sqlite3")
    yield opened
    await opened.close()


@pytest.fixture
def photo() -> PhotoTextToImage:
    from discord_fixtures import PhotoTextToImage

    return PhotoTextToImage()


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    from discord_fixtures import bot_settings

    marker = request.node.get_closest_marker("bot_settings")
    return bot_settings(tmp_path, **(marker.kwargs if marker else {}))


@pytest.fixture
def text_stage(request: pytest.FixtureRequest, photo: PhotoTextToImage, tiny_sd: Path) -> object:
    marker = request.node.get_closest_marker("text_stage")
    if marker is None or marker.args[0] == "photo":
        return photo
    from t2f.stages.text2img import TextToImage

    return TextToImage.from_pretrained(str(tiny_sd), safety_checker=True)  # its checker flags every image


@pytest.fixture
async def simcord_bot(settings: Settings, store: Store, stages: FacePipeline, text_stage: object):  # type: ignore[no-untyped-def]
    from discord_fixtures import bot_on_stack

    async with bot_on_stack(settings, store, stages, text_stage) as bot:
        yield bot


@pytest.fixture
async def fresh_bot(settings: Settings, store: Store, stages: FacePipeline, photo: PhotoTextToImage):  # type: ignore[no-untyped-def]
    """Makes another bot on its own stack (a restart: no in-memory state), closed when the test ends."""
    import contextlib

    from discord_fixtures import bot_on_stack

    async with contextlib.AsyncExitStack() as bots:

        async def make(text_stage: object = photo):  # type: ignore[no-untyped-def]
            return await bots.enter_async_context(bot_on_stack(settings, store, stages, text_stage))

        yield make
