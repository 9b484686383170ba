"""Declaring and reading setting values: one parser per setting, each naming the variable and what it allows.

:func:`setting` declares a field of :class:`t2f.config.Settings` with its variable, meaning and allowed
values. Every parser takes the variable's name and its raw text and returns the typed value, or raises
:class:`~t2f.errors.ConfigError` with one sentence for the operator. :data:`PARSERS` maps each field
of :class:`t2f.config.Settings` to its parser.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import Any

from t2f import bounds
from t2f.bounds import Bound
from t2f.errors import ConfigError

SCHEDULERS = ("dpmpp", "pndm", "ddim", "euler", "euler_a", "unipc")
KARRAS_SCHEDULERS = ("dpmpp", "euler", "unipc")  # the ones whose diffusers class has use_karras_sigmas
CHANNELS_LAST = ("auto", "on", "off", "compiled")
DTYPES = ("auto", "float16", "bfloat16", "float32")
FACE_CROPS = ("detect", "whole")
DETECTORS = ("torch", "tensorflow")
BACKENDS = ("local", "ray")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
COMPILE_MODES = ("off", "default", "graphs", "graphs-single")
HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def setting(env: str, default: Any, doc: str, *, allowed: str = "", secret: bool = False) -> Any:
    """A settings field: its variable ``env``, default, meaning (``doc``), allowed values and whether it is secret."""
    return field(default=default, metadata={"env": env, "doc": doc, "allowed": allowed, "secret": secret})


def _parse_number(var: str, raw: str, bound: Bound[Any]) -> Any:
    kind = type(bound.low)
    what = "a whole number" if kind is int else "a number"
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not {what}; allowed: {bound.text}.") from None
    if value not in bound:
        raise ConfigError(f"{var}={value:g} is out of range; allowed: {bound.text}.")
    return value


def _parse_choice(var: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise ConfigError(f"{var}={raw!r} is not allowed; allowed: {', '.join(choices)}.")
    return value


def _parse_bool(var: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{var}={raw!r} is not a switch; allowed: on, off (or true/false, 1/0, yes/no).")


def _parse_compile(var: str, raw: str) -> str:
    """``off``/``default``/``graphs``/``graphs-single``; the old switch values still work (on = default)."""
    value = raw.strip().lower()
    if value in COMPILE_MODES:
        return value
    if value in _TRUE or value in _FALSE:
        return "default" if value in _TRUE else "off"
    raise ConfigError(f"{var}={raw!r} is not allowed; allowed: off, default, graphs, graphs-single (on = default).")


def _parse_fast_steps(var: str, raw: str) -> int:
    """0 (the members' default steps) or steps a member may ask for."""
    if raw.strip() == "0":
        return 0
    try:
        return int(_parse_number(var, raw, bounds.MEMBER_STEPS))
    except ConfigError:
        raise ConfigError(
            f"{var}={raw!r} is not allowed; allowed: 0 (= T2F_STEPS), {bounds.MEMBER_STEPS.text}."
        ) from None


def _parse_device(var: str, raw: str) -> str:
    value = raw.strip().lower()
    if value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()):
        return value
    raise ConfigError(f"{var}={raw!r} is not a device; allowed: auto, cpu, cuda, cuda:N.")


def _parse_image_size(var: str, raw: str) -> int:
    value = int(_parse_number(var, raw, bounds.IMAGE_SIZE))
    if value % bounds.IMAGE_SIZE_MULTIPLE:
        raise ConfigError(
            f"{var}={value} is not a multiple of {bounds.IMAGE_SIZE_MULTIPLE}; "
            f"allowed: {bounds.IMAGE_SIZE.text}, a multiple of {bounds.IMAGE_SIZE_MULTIPLE}."
        )
    return value


def _parse_ids(var: str, raw: str) -> tuple[int, ...]:
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    # ASCII digits only: str.isdigit() also accepts "²" or "٣", which int() then refuses or reads differently.
    if not all(p.isascii() and p.isdigit() and int(p) < 2**64 for p in parts):
        raise ConfigError(f"{var}={raw!r} is not a list of ids; allowed: ids, comma-separated.")
    return tuple(int(p) for p in parts)


def _parse_text(var: str, raw: str) -> str:
    return raw.strip()


def _parse_template(var: str, raw: str) -> str:
    value = raw.strip()
    if value and "{prompt}" not in value:
        raise ConfigError(f"{var} must contain {{prompt}} where the member's words go, or be empty.")
    return value


def _parse_required_text(var: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ConfigError(f"{var} is empty; set it to a hub id or a local folder.")
    return value


def _parse_public_url(var: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if value and not (value.startswith(("http://", "https://")) and len(value.split("//", 1)[1]) > 0):
        raise ConfigError(f"{var}={raw!r} is not a web address; allowed: empty, or an http(s):// URL.")
    return value


def _parse_hosts(var: str, raw: str) -> tuple[str, ...]:
    """Host names or addresses, without ports, lower-cased (``[::1]`` is ``::1``); ``*`` is any host."""
    names = []
    for part in (p.strip().lower().rstrip(".") for p in raw.split(",") if p.strip()):
        name = part[1:-1] if part.startswith("[") and part.endswith("]") else part
        if name != "*" and not HOST_NAME.fullmatch(name) and not _is_address(name):
            raise ConfigError(
                f"{var}={raw!r} has {part!r}, which is not a host name; allowed: host names or addresses "
                "without a port, comma-separated (* for any)."
            )
        names.append(name)
    return tuple(names)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _parse_networks(var: str, raw: str) -> tuple[str, ...]:
    """Addresses or CIDR networks (``10.0.0.0/8``, ``::1``), each kept in its normal form."""
    networks = []
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ConfigError(
                f"{var}={raw!r} has {part!r}, which is not an address or network; allowed: addresses or CIDR "
                "networks, comma-separated."
            ) from None
    return tuple(networks)


PARSERS: dict[str, Callable[[str, str], Any]] = {
    "model": _parse_required_text,
    "model_revision": _parse_required_text,
    "device": _parse_device,
    "dtype": lambda var, raw: _parse_choice(var, raw, DTYPES),
    # The defaults every member gets, so they must be values a member may ask for.
    "steps": lambda var, raw: _parse_number(var, raw, bounds.MEMBER_STEPS),
    "guidance": lambda var, raw: _parse_number(var, raw, bounds.MEMBER_GUIDANCE),
    "image_size": _parse_image_size,
    "scheduler": lambda var, raw: _parse_choice(var, raw, SCHEDULERS),
    "safety_checker": _parse_bool,
    "channels_last": lambda var, raw: _parse_choice(var, raw, CHANNELS_LAST),
    "fuse_qkv": lambda var, raw: _parse_choice(var, raw, ("auto", "on", "off")),
    "compile_mode": _parse_compile,
    "taesd": _parse_text,
    "prnet_dir": _parse_text,
    "prnet_checkpoint_url": _parse_required_text,
    "prnet_data_url": _parse_required_text,
    "face_crop": lambda var, raw: _parse_choice(var, raw, FACE_CROPS),
    "detector": lambda var, raw: _parse_choice(var, raw, DETECTORS),
    "prompt_template": _parse_template,
    "negative_default": _parse_text,
    "max_repaints": lambda var, raw: _parse_number(var, raw, bounds.MAX_REPAINTS),
    "gate_max_yaw_deg": lambda var, raw: _parse_number(var, raw, bounds.GATE_ANGLE_DEG),
    "gate_max_pitch_deg": lambda var, raw: _parse_number(var, raw, bounds.GATE_ANGLE_DEG),
    "gate_min_face": lambda var, raw: _parse_number(var, raw, bounds.GATE_MIN_FACE),
    "guild_ids": _parse_ids,
    "db_path": lambda var, raw: Path(raw.strip()).expanduser(),
    "max_batch": lambda var, raw: _parse_number(var, raw, bounds.MAX_BATCH),
    "export_threads": lambda var, raw: _parse_number(var, raw, bounds.EXPORT_THREADS),
    "queue_capacity": lambda var, raw: _parse_number(var, raw, bounds.QUEUE_CAPACITY),
    "user_pending": lambda var, raw: _parse_number(var, raw, bounds.USER_PENDING),
    "cooldown_s": lambda var, raw: _parse_number(var, raw, bounds.COOLDOWN_S),
    "daily_quota": lambda var, raw: _parse_number(var, raw, bounds.DAILY_QUOTA),
    "job_timeout_s": lambda var, raw: _parse_number(var, raw, bounds.JOB_TIMEOUT_S),
    "progress_interval_s": lambda var, raw: _parse_number(var, raw, bounds.PROGRESS_INTERVAL_S),
    "blocklist_file": _parse_text,
    "warmup": _parse_bool,
    "cache_dir": lambda var, raw: Path(raw.strip()).expanduser(),
    "output_dir": lambda var, raw: Path(raw.strip()).expanduser(),
    "log_level": lambda var, raw: _parse_choice(var, raw, LOG_LEVELS),
    "log_format": lambda var, raw: _parse_choice(var, raw, LOG_FORMATS),
    "photo_input": _parse_bool,
    "keep_uploads": _parse_bool,
    "retention_days": lambda var, raw: _parse_number(var, raw, bounds.RETENTION_DAYS),
    "privacy_url": lambda var, raw: _parse_public_url(var, raw),
    "web_port": lambda var, raw: _parse_number(var, raw, bounds.WEB_PORT),
    "web_host": _parse_required_text,
    "public_url": lambda var, raw: _parse_public_url(var, raw),
    "web_secret": _parse_text,
    "keep_days": lambda var, raw: _parse_number(var, raw, bounds.KEEP_DAYS),
    "web_allowed_hosts": _parse_hosts,
    "trusted_proxies": _parse_networks,
    "web_pending": lambda var, raw: _parse_number(var, raw, bounds.WEB_PENDING),
    "metrics_port": lambda var, raw: _parse_number(var, raw, bounds.WEB_PORT),
    "metrics_host": _parse_required_text,
    "metrics_token": _parse_text,
    "backend": lambda var, raw: _parse_choice(var, raw, BACKENDS),
    "ray_address": _parse_text,
    "ray_min_replicas": lambda var, raw: _parse_number(var, raw, bounds.RAY_REPLICAS),
    "ray_max_replicas": lambda var, raw: _parse_number(var, raw, bounds.RAY_REPLICAS),
    "profile": lambda var, raw: _parse_choice(var, raw, bounds.PROFILES),
    "fast_steps": _parse_fast_steps,
    "karras_sigmas": _parse_bool,
    "deepcache_interval": lambda var, raw: _parse_number(var, raw, bounds.DEEPCACHE_INTERVAL),
    "deepcache_branch": lambda var, raw: _parse_number(var, raw, bounds.DEEPCACHE_BRANCH),
    "compile_vae": _parse_bool,
}
