"""The ``t2f`` command line: ``generate``, ``download`` and ``doctor``.

Every failure is one line on stderr and a non-zero exit code; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import platform
import secrets
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from t2f import __version__
from t2f.config import Settings, load_settings
from t2f.errors import ConfigError, T2FError
from t2f.outputs import json_bytes, png_bytes, write_files

EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130


def configure_logging(debug: bool) -> None:
    """Quiet the model libraries unless debugging; their warnings are for developers, not users."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if debug:
        return
    warnings.filterwarnings("ignore")
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    for lib in (diffusers_logging, transformers_logging):
        lib.set_verbosity_error()
        lib.disable_progress_bar()


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
    )


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
    started = time.perf_counter()
    stage = load_text_to_image(settings)
    stage.check_request(request)
    load_s = time.perf_counter() - started
    with tqdm(total=request.steps, desc="denoising", unit="step", file=sys.stderr) as bar:

        def on_step(progress: StepProgress) -> None:
            bar.total = progress.total
            bar.update(progress.step - bar.n)

        result = stage.generate(request, on_step=on_step)
    metadata: dict[str, Any] = {
        **dataclasses.asdict(request),
        "prompt_truncated": result.prompt_truncated,
        "dropped_prompt": result.dropped_prompt,
        "model": {"id": stage.model, "revision": stage.revision},
        "device": stage.device,
        "dtype": str(stage.dtype).removeprefix("torch."),
        "nsfw": result.nsfw,
        "withheld_reason": result.withheld_reason,
        "timings_s": {"load": round(load_s, 4), **{k: round(v, 4) for k, v in result.timings.items()}},
        "settings": settings.to_dict(),
        "t2f_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": {},
    }
    files: dict[str, bytes] = {}
    if result.image is not None:
        files["image.png"] = png_bytes(result.image)
        metadata["files"]["image"] = "image.png"
    files["metadata.json"] = json_bytes(metadata)
    write_files(out, files)
    if result.prompt_truncated:
        print(
            f"note: the prompt was longer than {stage.max_prompt_tokens} tokens; "
            f"this part was ignored: {result.dropped_prompt!r}",
            file=sys.stderr,
        )
    if result.image is None:
        raise T2FError(f"{result.withheld_reason} (metadata in {out})")
    print(f"wrote {out / 'image.png'} and {out / 'metadata.json'} (seed {request.seed})")
    return 0


def cmd_download(args: argparse.Namespace, settings: Settings) -> int:
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
    return 0


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    import diffusers
    import torch
    import transformers

    from t2f.text2img import FaceRequest
    from t2f.weights import check_pipeline_folder, resolve_snapshot

    healthy = True
    print(
        f"t2f {__version__} · Python {platform.python_version()} · torch {torch.__version__} · "
        f"diffusers {diffusers.__version__} · transformers {transformers.__version__}"
    )
    device = settings.resolved_device()
    if torch.cuda.is_available():
        gpu = f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}"
    else:
        gpu = "no CUDA GPU visible"
    print(f"device: {device} ({gpu}); dtype: {settings.resolved_dtype()}")
    try:
        resolved = resolve_snapshot(settings.model, revision=settings.model_revision, cache_dir=settings.cache_dir)
        check_pipeline_folder(resolved)
        print(f"diffusion model: {settings.model} present at {resolved.folder}")
        present = True
    except T2FError as exc:
        print(f"diffusion model: MISSING: {exc.user_message}")
        healthy = present = False
    print(f"TAESD previews: {settings.taesd or 'off (T2F_TAESD is empty)'}")
    if args.no_smoke or not present:
        print("smoke run: skipped" + ("" if present else " (no weights)"))
        return 0 if healthy else EXIT_FAILURE
    started = time.perf_counter()
    stage = load_text_to_image(settings)
    loaded = time.perf_counter()
    size = min(settings.image_size, 256)
    result = stage.generate(FaceRequest("a portrait photo of a face", seed=0, steps=2, size=size))
    done = time.perf_counter()
    verdict = "image withheld by the safety checker" if result.image is None else f"{size}x{size} image"
    print(f"smoke run: ok, {verdict}; load {loaded - started:.1f} s, 2 steps {done - loaded:.1f} s")
    return 0 if healthy else EXIT_FAILURE


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and library logs"
    )
    common.add_argument("--env-file", default=argparse.SUPPRESS, help="settings file to read (default: .env)")
    common.add_argument("--model", default=argparse.SUPPRESS, help="override T2F_MODEL (hub id or local folder)")
    common.add_argument("--device", default=argparse.SUPPRESS, help="override T2F_DEVICE (auto, cpu, cuda, cuda:N)")

    parser = argparse.ArgumentParser(prog="t2f", description="Text to a 3D face.", parents=[common])
    parser.add_argument("--version", action="version", version=f"t2f {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser("generate", parents=[common], help="paint a face from a prompt and write the results")
    gen.add_argument("prompt", help="what the face should look like")
    gen.add_argument("--negative", default="", help="what the image should not show")
    gen.add_argument("--seed", type=int, help="random seed (default: random, recorded in metadata.json)")
    gen.add_argument("--steps", type=int, help="denoising steps (default: T2F_STEPS)")
    gen.add_argument("--guidance", type=float, help="guidance scale (default: T2F_GUIDANCE)")
    gen.add_argument("--size", type=int, help="image side in pixels (default: T2F_IMAGE_SIZE)")
    gen.add_argument("--out", help="output folder (default: T2F_OUTPUT_DIR/<time>-<seed>)")
    gen.set_defaults(handler=cmd_generate)

    down = sub.add_parser("download", parents=[common], help="fetch the configured weights into the cache")
    down.add_argument("--force", action="store_true", help="contact the hub even when the files are already cached")
    down.set_defaults(handler=cmd_download)

    doc = sub.add_parser("doctor", parents=[common], help="show versions, device and weights, and do a smoke run")
    doc.add_argument("--no-smoke", action="store_true", help="skip the smoke generation")
    doc.set_defaults(handler=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    configure_logging(debug)
    try:
        settings = load_settings(getattr(args, "env_file", ".env"))
        overrides = {k: getattr(args, k) for k in ("model", "device") if hasattr(args, k)}
        if overrides:
            # Re-parse through the same validation as the environment, so --device gets the same checks.
            from t2f.config import read_environment, settings_from_mapping

            env = read_environment(getattr(args, "env_file", ".env"))
            env.update({"T2F_MODEL" if k == "model" else "T2F_DEVICE": v for k, v in overrides.items()})
            settings = settings_from_mapping(env)
        return int(args.handler(args, settings))
    except ConfigError as exc:
        print(f"t2f: configuration error: {exc.user_message}", file=sys.stderr)
        return EXIT_CONFIG
    except T2FError as exc:
        print(f"t2f: error: {exc.user_message}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("t2f: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        print(
            f"t2f: error: unexpected {type(exc).__name__}: {exc} (run again with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
