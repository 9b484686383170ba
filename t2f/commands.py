"""What each ``t2f`` sub-command does. Parsing and error reporting live in :mod:`t2f.cli`."""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from t2f import __version__
from t2f.build import load_face_pipeline, load_text_to_image, request_defaults
from t2f.config import Settings
from t2f.errors import ConfigError, InvalidInput, NoFaceFound, T2FError
from t2f.faces import FaceRequest, StepProgress
from t2f.files.checks import IMAGE_FILE_BYTES, MIB, check_output_folder, read_input_file
from t2f.files.outputs import IMAGE_FILE, json_bytes, png_bytes, write_files
from t2f.logs import say
from t2f.preflight import check_blocklist, check_device
from t2f.report import RANDOM_WEIGHTS_NOTE, FaceReport

if TYPE_CHECKING:
    from t2f.stages.pipeline import FacePipeline

EXIT_REFUSED = 3  # check-prompt: at least one prompt is refused; generate: the prompt is refused
ECHO_CHARS = 200  # the most of a user's text a note quotes back (a 100k-character prompt is not echoed whole)
PROMPT_LIST_BYTES = MIB  # eval-faces' prompt file: 100 prompts are about 6 KB


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def check_prompt_allowed(settings: Settings, request: FaceRequest) -> None:
    """The prompt filter's verdict on ``request``, as for a member: :class:`PromptRejected` when it refuses."""
    from t2f.build import load_prompt_filter
    from t2f.serve.moderation import PromptRejected

    check_blocklist(settings.blocklist_file)
    verdict = load_prompt_filter(settings).judge(request.prompt, request.negative_prompt)
    if not verdict.allowed:
        which = "prompt" if verdict.field == "prompt" else "negative prompt"
        refusal = PromptRejected(verdict)
        # The operator's own command line: say what matched, and how to paint it anyway.
        refusal.user_message = (
            f"The prompt filter refuses this {which} ({verdict.category}, {verdict.language or 'listed word'}; "
            "t2f check-prompt shows why); --no-filter paints it anyway."
        )
        raise refusal


def _base_metadata(settings: Settings) -> dict[str, Any]:
    return {
        "settings": settings.to_dict(),
        "t2f_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _reconstruct_into(
    pipeline: FacePipeline, image: Any, crop: str, report: FaceReport, files: dict[str, bytes]
) -> FaceReport:
    """Reconstruct ``image``, add its mesh files to ``files`` (in place) and return the report with the face."""
    from t2f.export.package import result_files
    from t2f.stages.prnet.checkpoint import provenance

    result = pipeline.reconstruct(image, crop=crop)
    export_times: dict[str, float] = {}
    files.update(result_files(result, export_times))
    return report.with_face(result, provenance(pipeline.prnet.config)).with_timings(export_times)


def _finish(out: Path, files: dict[str, bytes], report: FaceReport | None, metadata: dict[str, Any]) -> None:
    """Write ``files`` and metadata.json (the face report plus this run's context) into ``out``."""
    data = {**(report.to_json() if report is not None else {}), **metadata}
    data["files"] = sorted([*files, "metadata.json"])
    files["metadata.json"] = json_bytes(data)
    write_files(out, files)


def json_lines(settings: Settings) -> bool:
    """Whether stderr carries JSON records only (``T2F_LOG_FORMAT=json``): notes are records, bars are off."""
    return settings.log_format == "json"


def _say_weights_note(report: FaceReport, settings: Settings) -> None:
    """Unofficial PRNet weights make meaningless geometry: say so where the user looks, not only in metadata."""
    if report.prnet is not None and report.prnet.note:
        say(f"note: {report.prnet.note}", json_lines=json_lines(settings))


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    # The defaults fill what was left out; an explicit 0 is a value to refuse. Every value is checked here,
    # in milliseconds, before any model loads.
    defaults = request_defaults(settings)
    if args.size is not None:
        defaults = dataclasses.replace(defaults, size=args.size)
    request = defaults.request(
        args.prompt,
        negative_prompt=args.negative,
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        profile=args.profile,
    )
    out = check_output_folder(
        Path(args.out) if args.out else settings.output_dir / f"{datetime.now():%Y%m%d-%H%M%S}-{request.seed}",
        what="--out",
    )
    if not args.no_filter:
        check_prompt_allowed(settings, request)
    check_device(settings.device)
    crop = "whole" if args.whole_image else settings.face_crop
    started = time.perf_counter()
    # PRNet first: a missing mesh model should stop the run before minutes of diffusion.
    pipeline = None if args.image_only else load_face_pipeline(settings, crop=crop)
    stage = load_text_to_image(settings)
    stage.check_request(request)
    load_s = time.perf_counter() - started
    # disable=None: drawn on a terminal only (in a log every redraw is a line); never in JSON mode
    off = True if json_lines(settings) else None
    with tqdm(total=request.steps, desc="denoising", unit="step", file=sys.stderr, disable=off) as bar:

        def on_step(progress: StepProgress) -> None:
            bar.total = progress.total
            bar.update(progress.step - bar.n)

        painted = stage.generate(request, on_step=on_step)
    report = FaceReport.of_painting(painted, model=stage.model, revision=stage.revision)
    report = report.with_timings({"load": load_s, **painted.timings})
    metadata: dict[str, Any] = {
        "device": stage.device,
        "dtype": str(stage.dtype).removeprefix("torch."),
        "withheld_reason": painted.withheld_reason,
        "face_crop": None if args.image_only else crop,
        **_base_metadata(settings),
    }
    if painted.prompt_truncated:
        say(
            f"note: the prompt was longer than {stage.max_prompt_tokens} tokens; "
            f"this part was ignored: {clip(painted.dropped_prompt)!r}",
            json_lines=json_lines(settings),
        )
    files: dict[str, bytes] = {}
    if painted.image is None:
        _finish(out, files, report, metadata)
        raise T2FError(f"{painted.withheld_reason} (metadata in {out})")
    files[IMAGE_FILE] = png_bytes(painted.image)
    if pipeline is not None:
        try:
            report = _reconstruct_into(pipeline, painted.image, crop, report, files)
        except NoFaceFound as exc:
            metadata["error"] = exc.user_message
            _finish(out, files, report, metadata)
            raise NoFaceFound(f"{exc.user_message} The image was kept in {out}.") from None
    _finish(out, files, report, metadata)
    print(f"wrote {', '.join(sorted(files))} to {out} (seed {request.seed})")
    _say_weights_note(report, settings)
    return 0


def cmd_reconstruct(args: argparse.Namespace, settings: Settings) -> int:
    from t2f.files.images import load_image

    source = Path(args.image)
    loaded = load_image(read_input_file(source, what="The image", max_bytes=IMAGE_FILE_BYTES))
    out = check_output_folder(
        Path(args.out) if args.out else settings.output_dir / f"{datetime.now():%Y%m%d-%H%M%S}-{source.stem}",
        what="--out",
    )
    check_device(settings.device)
    crop = "whole" if args.whole_image else settings.face_crop
    started = time.perf_counter()
    pipeline = load_face_pipeline(settings, crop=crop)
    metadata: dict[str, Any] = {
        "source": source.name,
        "source_size": list(loaded.original_size),
        "downscaled_by": loaded.scale,
        "face_crop": crop,
        "device": pipeline.prnet.device,
        **_base_metadata(settings),
    }
    report = FaceReport(timings_s={"load": round(time.perf_counter() - started, 4)})
    files = {IMAGE_FILE: png_bytes(loaded.pixels)}
    report = _reconstruct_into(pipeline, loaded.pixels, crop, report, files)
    _finish(out, files, report, metadata)
    print(f"wrote {', '.join(sorted(files))} to {out}")
    _say_weights_note(report, settings)
    return 0


def cmd_prnet_import(args: argparse.Namespace, settings: Settings) -> int:
    from t2f.stages.prnet.assets import PRNetAssets, install_uv_data
    from t2f.stages.prnet.checkpoint import import_tf_checkpoint

    folder = check_output_folder(Path(args.out), what="--out") if args.out else settings.resolved_prnet_dir()
    config = import_tf_checkpoint(Path(args.checkpoint), folder)
    print(f"converted {args.checkpoint} -> {folder / 'model.safetensors'} (sha256 {config.sha256[:12]}…)")
    if args.uv_data:
        install_uv_data(folder, assets=PRNetAssets(), source=Path(args.uv_data))
        print(f"installed PRNet UV data from {args.uv_data} -> {folder / 'uv-data'}")
    return 0


def cmd_download(args: argparse.Namespace, settings: Settings) -> int:
    from t2f.files.weights import check_pipeline_folder, download_pipeline, is_local_reference, resolve_snapshot
    from t2f.stages.prnet.assets import PRNetAssets, download_prnet
    from t2f.web.assets import PACKAGE, VERSION, install_model_viewer

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
    prnet_dir = download_prnet(settings.resolved_prnet_dir(), assets=assets, progress=not json_lines(settings))
    print(f"PRNet: {prnet_dir} (weights and UV data verified)")
    # The 3D viewer of the web pages (the bot with T2F_WEB_PORT, `t2f serve`), as `t2f web-assets` fetches it.
    viewer = install_model_viewer(settings.data_dir(), registry=args.registry)
    print(f"3D viewer {PACKAGE} {VERSION}: {viewer}")
    return 0


def cmd_eval_faces(args: argparse.Namespace, settings: Settings) -> int:
    """Paint every prompt ``--runs`` times, gate each image, repaint as the bot would, print the yield."""
    from t2f.build import framing, gate_limits
    from t2f.evaluate import evaluate, painter, read_prompts, yield_report
    from t2f.stages.detect import FaceDetector

    source = Path(args.prompts)
    data = read_input_file(source, what="The prompt list", max_bytes=PROMPT_LIST_BYTES)
    try:
        prompts = read_prompts(data.decode("utf-8").splitlines())
    except UnicodeDecodeError:
        raise InvalidInput(f"The prompt list {source.name} is not UTF-8 text; save it as UTF-8.") from None
    if args.out:
        check_output_folder(Path(args.out).absolute().parent, what="The folder of --out")
    if not prompts or args.runs < 1:
        raise InvalidInput("Give at least one prompt and --runs 1 or more.")
    defaults = request_defaults(settings)
    if args.size is not None:
        defaults = dataclasses.replace(defaults, size=args.size)
    request = defaults.request("eval", seed=0, steps=args.steps)
    stage = load_text_to_image(settings)
    detector = FaceDetector(engine=settings.detector, device=settings.resolved_device())
    trials = evaluate(
        prompts,
        paint=painter(stage),
        detect=detector.detect,
        framing=framing(settings),
        limits=gate_limits(settings),
        runs=args.runs,
        max_repaints=settings.max_repaints,
        request=request,
    )
    context = (
        f"Model {settings.model}, {request.size} px, {request.steps} steps, guidance {request.guidance:g}; "
        f"{len(prompts)} prompts x {args.runs} seeds from {source.name}; up to {settings.max_repaints} "
        f"repaints; gate: yaw <= {settings.gate_max_yaw_deg:g} deg, pitch <= {settings.gate_max_pitch_deg:g} "
        f"deg, face >= {settings.gate_min_face:g} of the side."
    )
    report = yield_report(trials, context=context)
    print(report)
    if args.out:
        write_files(Path(args.out).parent, {Path(args.out).name: (report + "\n").encode("utf-8")})
    return 0


def cmd_check_prompt(args: argparse.Namespace, settings: Settings) -> int:
    """Judge one prompt, or ``prompt<TAB>negative`` lines from stdin, with the configured filter.

    One line per prompt: ``allowed`` or ``refused``, the prompt (and `` | `` negative prompt), then for a
    refusal the category and language and which entry matched in which field. Exit 0 when every prompt
    is allowed, :data:`EXIT_REFUSED` when at least one is refused (2: a bad setting, 1: anything else).
    """
    from t2f.build import load_prompt_filter
    from t2f.serve.moderation import LANGUAGE_NAMES, Category, judge_lines, safe_echo

    prompt_filter = load_prompt_filter(settings)
    suggestive = not args.refuse_suggestive
    if args.prompt == "-":
        verdicts = judge_lines(prompt_filter, sys.stdin, suggestive=suggestive)
    else:
        verdicts = [prompt_filter.judge(args.prompt, args.negative, suggestive=suggestive)]
    for verdict in verdicts:
        shown = safe_echo(verdict.prompt, 80) + (f" | {safe_echo(verdict.negative, 80)}" if verdict.negative else "")
        language = LANGUAGE_NAMES.get(verdict.language or "", "T2F_BLOCKLIST_FILE")
        if verdict.allowed and verdict.category is Category.SUGGESTIVE:
            print(f"allowed\t{shown}\tsuggestive ({language}): refused with --refuse-suggestive")
        elif verdict.allowed:
            print(f"allowed\t{shown}")
        else:
            print(f"refused\t{shown}\t{verdict.category} ({language})\t{verdict.field} matches {verdict.reason!r}")
    return 0 if all(v.allowed for v in verdicts) else EXIT_REFUSED


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    import diffusers
    import torch
    import transformers

    from t2f.files.weights import check_pipeline_folder, resolve_snapshot
    from t2f.stages.prnet.assets import weights_present
    from t2f.stages.text2img import SAFETY_OFF

    healthy = True
    print(
        f"t2f {__version__} · Python {platform.python_version()} · torch {torch.__version__} · "
        f"diffusers {diffusers.__version__} · transformers {transformers.__version__}"
    )
    gpu = (
        f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}"
        if torch.cuda.is_available()
        else "no CUDA GPU visible"
    )
    try:
        check_device(settings.device)
        print(f"device: {settings.resolved_device()} ({gpu}); dtype: {settings.resolved_dtype()}")
        device_ok = True
    except ConfigError as exc:
        print(f"device: UNAVAILABLE: {exc.user_message}")
        healthy = device_ok = False
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
        official = prnet_is_official(prnet_dir)
        print(
            f"PRNet: present at {prnet_dir}"
            + ("" if official else f" (NOT the official weights: {RANDOM_WEIGHTS_NOTE})")
        )
    else:
        print(
            f"PRNet: MISSING in {prnet_dir} (weights {'ok' if weights_present(prnet_dir) else 'missing'}, "
            f"UV data {'ok' if uv_ok else 'missing'}); fetch with: t2f download"
        )
        healthy = False
    print(f"TAESD previews: {settings.taesd or 'off (T2F_TAESD is empty)'}")
    print("safety checker: on" if settings.safety_checker else f"safety checker: WARNING {SAFETY_OFF}")
    if args.no_smoke or not present or not device_ok:
        print("smoke run: skipped" + ("" if present else " (no weights)") + ("" if device_ok else " (no device)"))
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


def prnet_is_official(folder: Path) -> bool:
    """Whether the PRNet weights in ``folder`` were converted from the official checkpoint (by config.json)."""
    import json
    from dataclasses import fields

    from t2f.stages.prnet.checkpoint import CONFIG_FILE, PRNetConfig, is_official

    try:
        raw = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        return is_official(PRNetConfig(**{f.name: raw[f.name] for f in fields(PRNetConfig) if f.name in raw}))
    except (OSError, ValueError, TypeError):
        return False
