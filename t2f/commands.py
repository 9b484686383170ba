"""What each ``t2f`` sub-command does. Parsing and error reporting live in :mod:`t2f.cli`."""

from __future__ import annotations

import argparse
import dataclasses
import platform
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from t2f import __version__
from t2f.config import Settings
from t2f.errors import NoFaceFound, T2FError
from t2f.outputs import IMAGE_FILE, json_bytes, png_bytes, write_files

RANDOM_WEIGHTS_NOTE = (
    "PRNet weights were not converted from the official checkpoint (its sha256 differs); "
    "the geometry may be meaningless."
)


def load_text_to_image(settings: Settings) -> Any:
    """Build the text-to-image stage from settings (models load here, once)."""
    from t2f.text2img import TextToImage

    return TextToImage.from_pretrained(
        settings.model,
        revision=settings.model_revision,
        device=settings.resolved_device(),
        dtype=settings.resolved_dtype(),
        scheduler=settings.scheduler,
        safety_checker=settings.safety_checker,
        cache_dir=settings.cache_dir,
        taesd=settings.taesd,
        channels_last=settings.speedup("channels_last"),
        fuse_qkv=settings.speedup("fuse_qkv"),
        compile_unet=settings.compile,
    )


def load_face_pipeline(settings: Settings, *, text_to_image: Any = None, crop: str = "whole") -> Any:
    """PRNet (weights + UV data from the PRNet folder) wrapped in a :class:`FacePipeline`.

    With ``crop="detect"`` the face detector is built here too, so its start-up is not a face's time.
    """
    from t2f.detect import FaceDetector
    from t2f.pipeline import FacePipeline
    from t2f.prnet.model import PRNet
    from t2f.prnet.uv import UVData
    from t2f.text2img import TORCH_DTYPES

    folder = settings.resolved_prnet_dir()
    prnet = PRNet.from_pretrained(
        folder,
        device=settings.resolved_device(),
        dtype=TORCH_DTYPES[settings.resolved_dtype()],
        channels_last=settings.speedup("channels_last"),
        compile_network=settings.compile,
    )
    detector = FaceDetector() if crop == "detect" else None
    return FacePipeline(prnet=prnet, uv=UVData.load(folder / "uv-data"), detector=detector, text_to_image=text_to_image)


def _base_metadata(settings: Settings) -> dict[str, Any]:
    return {
        "settings": settings.to_dict(),
        "t2f_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _reconstruct_into(pipeline: Any, image: Any, crop: str, metadata: dict[str, Any], files: dict[str, bytes]) -> None:
    """Reconstruct ``image`` and add mesh files and facts to ``files`` / ``metadata`` (in place)."""
    from t2f.pipeline import face_metadata, result_files
    from t2f.prnet.checkpoint import is_official

    result = pipeline.reconstruct(image, crop=crop)
    timings = metadata["timings_s"]
    timings.update({k: round(v, 4) for k, v in result.timings.items()})
    export_times: dict[str, float] = {}
    files.update(result_files(result, export_times))
    timings.update({k: round(v, 4) for k, v in export_times.items()})
    config = pipeline.prnet.config
    metadata["face"] = face_metadata(result)
    metadata["prnet"] = {"weights": config.source or "unknown", "sha256": config.sha256,
                         "checkpoint_sha256": config.source_sha256}  # fmt: skip
    if not is_official(config):
        metadata["prnet"]["note"] = RANDOM_WEIGHTS_NOTE


def _finish(out: Path, files: dict[str, bytes], metadata: dict[str, Any]) -> None:
    metadata["files"] = sorted([*files, "metadata.json"])
    files["metadata.json"] = json_bytes(metadata)
    write_files(out, files)


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from t2f.text2img import FaceRequest, StepProgress

    request = FaceRequest(
        prompt=args.prompt,
        negative_prompt=args.negative,
        seed=secrets.randbelow(2**32) if args.seed is None else args.seed,
        steps=args.steps or settings.steps,
        guidance=settings.guidance if args.guidance is None else args.guidance,
        size=args.size or settings.image_size,
    )
    out = Path(args.out) if args.out else settings.output_dir / f"{datetime.now():%Y%m%d-%H%M%S}-{request.seed}"
    crop = "whole" if args.whole_image else settings.face_crop
    started = time.perf_counter()
    # PRNet first: a missing mesh model should stop the run before minutes of diffusion.
    pipeline = None if args.image_only else load_face_pipeline(settings, crop=crop)
    stage = load_text_to_image(settings)
    stage.check_request(request)
    load_s = time.perf_counter() - started
    with tqdm(total=request.steps, desc="denoising", unit="step", file=sys.stderr) as bar:

        def on_step(progress: StepProgress) -> None:
            bar.total = progress.total
            bar.update(progress.step - bar.n)

        painted = stage.generate(request, on_step=on_step)
    metadata: dict[str, Any] = {
        **dataclasses.asdict(request),
        "prompt_truncated": painted.prompt_truncated,
        "dropped_prompt": painted.dropped_prompt,
        "model": {"id": stage.model, "revision": stage.revision},
        "device": stage.device,
        "dtype": str(stage.dtype).removeprefix("torch."),
        "nsfw": painted.nsfw,
        "withheld_reason": painted.withheld_reason,
        "face_crop": None if args.image_only else crop,
        "timings_s": {"load": round(load_s, 4), **{k: round(v, 4) for k, v in painted.timings.items()}},
        **_base_metadata(settings),
    }
    if painted.prompt_truncated:
        print(f"note: the prompt was longer than {stage.max_prompt_tokens} tokens; "
              f"this part was ignored: {painted.dropped_prompt!r}", file=sys.stderr)  # fmt: skip
    files: dict[str, bytes] = {}
    if painted.image is None:
        _finish(out, files, metadata)
        raise T2FError(f"{painted.withheld_reason} (metadata in {out})")
    files[IMAGE_FILE] = png_bytes(painted.image)
    if pipeline is not None:
        try:
            _reconstruct_into(pipeline, painted.image, crop, metadata, files)
        except NoFaceFound as exc:
            metadata["error"] = exc.user_message
            _finish(out, files, metadata)
            raise NoFaceFound(f"{exc.user_message} The image was kept in {out}.") from None
    _finish(out, files, metadata)
    print(f"wrote {', '.join(sorted(files))} to {out} (seed {request.seed})")
    return 0


def cmd_reconstruct(args: argparse.Namespace, settings: Settings) -> int:
    from t2f.images import load_image

    source = Path(args.image)
    loaded = load_image(source)
    out = Path(args.out) if args.out else settings.output_dir / f"{datetime.now():%Y%m%d-%H%M%S}-{source.stem}"
    crop = "whole" if args.whole_image else settings.face_crop
    started = time.perf_counter()
    pipeline = load_face_pipeline(settings, crop=crop)
    metadata: dict[str, Any] = {
        "source": source.name,
        "source_size": list(loaded.original_size),
        "downscaled_by": loaded.scale,
        "face_crop": crop,
        "device": pipeline.prnet.device,
        "timings_s": {"load": round(time.perf_counter() - started, 4)},
        **_base_metadata(settings),
    }
    files = {IMAGE_FILE: png_bytes(loaded.pixels)}
    _reconstruct_into(pipeline, loaded.pixels, crop, metadata, files)
    _finish(out, files, metadata)
    print(f"wrote {', '.join(sorted(files))} to {out}")
    return 0


def cmd_prnet_import(args: argparse.Namespace, settings: Settings) -> int:
    from t2f.prnet.assets import PRNetAssets, install_uv_data
    from t2f.prnet.checkpoint import import_tf_checkpoint

    folder = Path(args.out) if args.out else settings.resolved_prnet_dir()
    config = import_tf_checkpoint(Path(args.checkpoint), folder)
    print(f"converted {args.checkpoint} -> {folder / 'model.safetensors'} (sha256 {config.sha256[:12]}…)")
    if args.uv_data:
        install_uv_data(folder, assets=PRNetAssets(), source=Path(args.uv_data))
        print(f"installed PRNet UV data from {args.uv_data} -> {folder / 'uv-data'}")
    return 0


def cmd_download(args: argparse.Namespace, settings: Settings) -> int:
    from t2f.prnet.assets import PRNetAssets, download_prnet
    from t2f.weights import check_pipeline_folder, download_pipeline, is_local_reference, resolve_snapshot

    try:
        # Already complete in the cache: nothing to fetch, and no network needed (`make bot` runs this each start).
        if args.force:
            raise T2FError("download forced")
        resolved = resolve_snapshot(settings.model, revision=settings.model_revision, cache_dir=settings.cache_dir)
        check_pipeline_folder(resolved)
        where = (
            f"revision {resolved.revision}, already downloaded"
            if resolved.revision
            else "local folder, nothing to download"
        )
    except T2FError:
        resolved = download_pipeline(settings.model, revision=settings.model_revision, cache_dir=settings.cache_dir)
        where = f"revision {resolved.revision}, downloaded"
    print(f"diffusion model {settings.model}: {resolved.folder} ({where})")
    if settings.taesd and not is_local_reference(settings.taesd):
        from huggingface_hub import snapshot_download

        try:
            folder = snapshot_download(settings.taesd, cache_dir=settings.cache_dir)
        except Exception as exc:
            raise T2FError(
                f"Could not download TAESD '{settings.taesd}': {type(exc).__name__}. Check the network."
            ) from exc
        print(f"TAESD {settings.taesd}: {folder}")
    assets = PRNetAssets(checkpoint_data_url=settings.prnet_checkpoint_url, data_url=settings.prnet_data_url)
    prnet_dir = download_prnet(settings.resolved_prnet_dir(), assets=assets)
    print(f"PRNet: {prnet_dir} (weights and UV data verified)")
    return 0


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    import diffusers
    import torch
    import transformers

    from t2f.prnet.assets import weights_present
    from t2f.text2img import FaceRequest
    from t2f.weights import check_pipeline_folder, resolve_snapshot

    healthy = True
    print(f"t2f {__version__} · Python {platform.python_version()} · torch {torch.__version__} · "
          f"diffusers {diffusers.__version__} · transformers {transformers.__version__}")  # fmt: skip
    gpu = (
        f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}"
        if torch.cuda.is_available()
        else "no CUDA GPU visible"
    )
    print(f"device: {settings.resolved_device()} ({gpu}); dtype: {settings.resolved_dtype()}")
    try:
        resolved = resolve_snapshot(settings.model, revision=settings.model_revision, cache_dir=settings.cache_dir)
        check_pipeline_folder(resolved)
        print(f"diffusion model: {settings.model} present at {resolved.folder}")
        present = True
    except T2FError as exc:
        print(f"diffusion model: MISSING: {exc.user_message}")
        healthy = present = False
    prnet_dir = settings.resolved_prnet_dir()
    uv_ok = (prnet_dir / "uv-data" / "triangles.txt").is_file()
    if weights_present(prnet_dir) and uv_ok:
        print(f"PRNet: present at {prnet_dir}")
    else:
        print(f"PRNet: MISSING in {prnet_dir} (weights {'ok' if weights_present(prnet_dir) else 'missing'}, "
              f"UV data {'ok' if uv_ok else 'missing'}); fetch with: t2f download")  # fmt: skip
        healthy = False
    print(f"TAESD previews: {settings.taesd or 'off (T2F_TAESD is empty)'}")
    if args.no_smoke or not present:
        print("smoke run: skipped" + ("" if present else " (no weights)"))
        return 0 if healthy else 1
    started = time.perf_counter()
    stage = load_text_to_image(settings)
    loaded = time.perf_counter()
    size = min(settings.image_size, 256)
    result = stage.generate(FaceRequest("a portrait photo of a face", seed=0, steps=2, size=size))
    done = time.perf_counter()
    verdict = "image withheld by the safety checker" if result.image is None else f"{size}x{size} image"
    print(f"smoke run: ok, {verdict}; load {loaded - started:.1f} s, 2 steps {done - loaded:.1f} s")
    return 0 if healthy else 1
