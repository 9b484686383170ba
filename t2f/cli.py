"""The ``t2f`` command line: parsing, logging and one-line error reporting.

Every failure is one line on stderr and a non-zero exit code: 2 for a bad setting, argument or input
file (all found before any model loads), 3 for a prompt the filter refuses, 1 for anything else;
``--debug`` shows tracebacks and library logs. The commands themselves are in :mod:`t2f.commands`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Mapping

# TensorFlow (MTCNN, checkpoint import) prints C++ start-up logs unless told otherwise before it loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from t2f import __version__, commands, web_commands
from t2f.bounds import PROFILES
from t2f.config import load_environment, setting_names, settings_from_mapping
from t2f.errors import ConfigError, InvalidImage, InvalidInput, InvalidRequest, T2FError
from t2f.logs import configure_logging, quiet_third_party, say, wants_json

EXIT_FAILURE = 1
EXIT_CONFIG = 2  # a bad setting, argument or input file: the same code as argparse's own refusals
EXIT_REFUSED = commands.EXIT_REFUSED  # a prompt the filter refuses
EXIT_INTERRUPTED = 130
OVERRIDES = {"model": "T2F_MODEL", "device": "T2F_DEVICE"}


def quiet_libraries(debug: bool, *, show_downloads: bool = False, terminal: bool | None = None) -> None:
    """Quiet the model libraries unless debugging; their warnings are for developers, not users.

    Done through the variables diffusers, transformers, tqdm and the hub read when they load, so nothing
    heavy is imported before a command needs it (``t2f --help`` answers at once). ``show_downloads``
    keeps the hub's progress bars (size, speed, time left) for commands that fetch gigabytes. Progress
    bars (the hub's, diffusers' "Loading pipeline components", denoising) are drawn only when stderr is
    a ``terminal`` (default: asked of stderr): in a log file each redraw is another line.
    """
    if debug:
        return
    warnings.filterwarnings("ignore")
    quiet_third_party()
    if terminal is None:
        terminal = sys.stderr.isatty()
    if not show_downloads or not terminal:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if not terminal:
        os.environ.setdefault("TQDM_DISABLE", "1")  # read by tqdm when it is imported: every bar built on it


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

    gen = sub.add_parser("generate", parents=[common], help="paint a face from a prompt and build its 3D mesh")
    gen.add_argument("prompt", help="what the face should look like")
    gen.add_argument("--negative", default="", help="what the image should not show")
    gen.add_argument("--seed", type=int, help="random seed (default: random, recorded in metadata.json)")
    gen.add_argument("--steps", type=int, help="denoising steps (default: T2F_STEPS)")
    gen.add_argument("--guidance", type=float, help="guidance scale (default: T2F_GUIDANCE)")
    gen.add_argument("--size", type=int, help="image side in pixels (default: T2F_IMAGE_SIZE)")
    gen.add_argument(
        "--profile",
        choices=PROFILES,
        help="quality, or fast: what T2F_FAST_STEPS etc. switch on (default: T2F_PROFILE)",
    )
    gen.add_argument("--out", help="output folder (default: T2F_OUTPUT_DIR/<time>-<seed>)")
    gen.add_argument("--image-only", action="store_true", help="stop after the image (no face detection or mesh)")
    gen.add_argument("--whole-image", action="store_true", help="use the whole image as the face crop (no detection)")
    gen.add_argument(
        "--no-filter", action="store_true", help="paint a prompt the prompt filter refuses (exit 3 without it)"
    )
    gen.set_defaults(handler=commands.cmd_generate)

    rec = sub.add_parser("reconstruct", parents=[common], help="build the 3D face mesh of an existing photo")
    rec.add_argument("image", help="a PNG, JPEG or WebP file with a face")
    rec.add_argument("--out", help="output folder (default: T2F_OUTPUT_DIR/<time>-<name>)")
    rec.add_argument("--whole-image", action="store_true", help="use the whole image as the face crop (no detection)")
    rec.set_defaults(handler=commands.cmd_reconstruct)

    prnet = sub.add_parser("prnet", parents=[common], help="PRNet weights")
    prnet_sub = prnet.add_subparsers(dest="prnet_command", required=True, metavar="ACTION")
    imp = prnet_sub.add_parser("import", parents=[common], help="convert a TensorFlow PRNet checkpoint for t2f")
    imp.add_argument("checkpoint", help="checkpoint prefix, e.g. Data/net-data/256_256_resfcn256_weight")
    imp.add_argument("--uv-data", help="also install PRNet's uv-data folder from here (sha256-checked)")
    imp.add_argument("--out", help="PRNet folder to write (default: T2F_PRNET_DIR)")
    imp.set_defaults(handler=commands.cmd_prnet_import)

    down = sub.add_parser(
        "download", parents=[common], help="fetch the configured weights and the 3D viewer into the cache"
    )
    down.add_argument("--force", action="store_true", help="contact the hub even when the files are already cached")
    down.add_argument("--registry", help="npm registry to fetch the 3D viewer from (default: registry.npmjs.org)")
    down.set_defaults(handler=commands.cmd_download)

    check = sub.add_parser(
        "check-prompt",
        parents=[common],
        help="say whether the prompt filter allows a prompt (exit 0) or refuses one (3), and why",
    )
    check.add_argument("prompt", help="the prompt, or - to read prompt<TAB>negative lines from stdin")
    check.add_argument("--negative", default="", help="the negative prompt")
    check.add_argument(
        "--refuse-suggestive",
        action="store_true",
        help="judge as a server that refuses suggestive words alone (/faceadmin suggestive allow:False)",
    )
    check.set_defaults(handler=commands.cmd_check_prompt)

    evals = sub.add_parser(
        "eval-faces", parents=[common], help="paint prompts several times and report how often the face gate passes"
    )
    evals.add_argument("prompts", help="a text file, one prompt per line (e.g. bench/face_prompts.txt)")
    evals.add_argument("--runs", type=int, default=3, help="seeds per prompt (default 3)")
    evals.add_argument("--steps", type=int, help="denoising steps (default: T2F_STEPS)")
    evals.add_argument("--size", type=int, help="image side in pixels (default: T2F_IMAGE_SIZE)")
    evals.add_argument("--out", help="also write the Markdown report here")
    evals.set_defaults(handler=commands.cmd_eval_faces)

    # t2f web-assets, t2f serve (t2f.web): the 3D viewer download and the web app on one machine.
    assets = sub.add_parser("web-assets", parents=[common], help="fetch the 3D viewer for web pages (once)")
    assets.add_argument("--registry", help="npm registry to fetch it from (default: registry.npmjs.org)")
    assets.set_defaults(handler=web_commands.cmd_web_assets)
    serve = sub.add_parser("serve", parents=[common], help="the web app: prompt, progress and the 3D face in a browser")
    serve.add_argument("--host", help="address to listen on (default: T2F_WEB_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port, 1 to 65535 (default: T2F_WEB_PORT, or 8080 when that is 0)")
    serve.set_defaults(handler=web_commands.cmd_serve)

    doc = sub.add_parser("doctor", parents=[common], help="show versions, device and weights, and do a smoke run")
    doc.add_argument("--no-smoke", action="store_true", help="skip the smoke generation")
    doc.set_defaults(handler=commands.cmd_doctor)
    return parser


def fail(line: str, code: int, env: Mapping[str, str]) -> int:
    """Say the one line that ends a failed command (a JSON record with ``T2F_LOG_FORMAT=json``); return ``code``."""
    say(line, json_lines=wants_json(env), level=logging.ERROR, logger="t2f")
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    quiet_libraries(debug, show_downloads=args.command == "download")
    env: Mapping[str, str] = os.environ  # until .env is read: how to write a line about .env itself
    try:
        # --env-file names a file that must exist; the default .env may be absent.
        environment = load_environment(
            getattr(args, "env_file", ".env"), required=hasattr(args, "env_file"), known=setting_names()
        )
        for warning in environment.warnings:
            say(f"t2f: warning: {warning}", json_lines=wants_json(environment.values), logger="t2f")
        # Command-line overrides go through the same validation as the environment.
        env = {
            **environment.values,
            **{var: getattr(args, name) for name, var in OVERRIDES.items() if hasattr(args, name)},
        }
        settings = settings_from_mapping(env)
        configure_logging(settings.log_level or "warning", settings.log_format, debug=debug)
        return int(args.handler(args, settings))
    except ConfigError as exc:
        return fail(f"t2f: configuration error: {exc.user_message}", EXIT_CONFIG, env)
    except (InvalidRequest, InvalidInput, InvalidImage) as exc:  # an argument or input file t2f cannot use
        return fail(f"t2f: error: {exc.user_message}", EXIT_CONFIG, env)
    except T2FError as exc:
        from t2f.serve.moderation import PromptRejected  # here, not at the top: `t2f --help` stays quick

        if isinstance(exc, PromptRejected):
            return fail(f"t2f: refused: {exc.user_message}", EXIT_REFUSED, env)
        return fail(f"t2f: error: {exc.user_message}", EXIT_FAILURE, env)
    except KeyboardInterrupt:
        return fail("t2f: interrupted", EXIT_INTERRUPTED, env)
    except Exception as exc:
        if debug:
            raise
        line = f"t2f: error: unexpected {type(exc).__name__}: {exc} (run again with --debug for the traceback)"
        return fail(line, EXIT_FAILURE, env)
