"""Reading the environment: ``.env`` under the process's own variables, and the hub's cache folder.

A settings file is read like any input a person names: a regular file (or a pipe, for
``--env-file <(decrypt .env)``) of at most 1 MiB, UTF-8, each line ``NAME=value`` (a line python-dotenv
cannot parse, or a name without ``=``, is refused with its line number). A ``T2F_`` name that is no
setting is a warning that suggests the nearest real one: a typo would otherwise be ignored in silence.
"""

from __future__ import annotations

import difflib
import io
import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from t2f.errors import ConfigError, InvalidInput
from t2f.files.checks import MIB, read_input_file

ENV_FILE_BYTES = MIB
# T2F_ names that are read but are not settings: the tests' shared data folder.
OTHER_NAMES = ("T2F_SHARED_DIR",)


@dataclass(frozen=True)
class Environment:
    """The variables t2f reads (``.env`` under the process's own) and a warning per unknown ``T2F_`` name."""

    values: dict[str, str]
    warnings: tuple[str, ...] = ()


def load_environment(
    env_file: str | os.PathLike[str] | None = ".env", *, required: bool = False, known: Collection[str] = ()
) -> Environment:
    """Merge ``env_file`` under the process environment (the real environment wins).

    Parameters
    ----------
    env_file : the settings file; None reads the environment alone.
    required : the file was asked for by name (``--env-file``), so a missing one is an error; the
        default ``.env`` may be absent.
    known : the setting names; when given, every other ``T2F_`` name gets a warning.

    Raises
    ------
    ConfigError
        When the file is missing (and ``required``), not a file, over 1 MiB, not UTF-8, or has a line
        that is not ``NAME=value``; the message names the line.
    """
    from_file: dict[str, str] = {}
    lines: dict[str, int] = {}
    if env_file is not None and (required or os.path.lexists(env_file)):
        from_file, lines = _read_env_file(Path(env_file))
    merged = {**from_file, **os.environ}
    file_name = Path(env_file).name if env_file is not None else ".env"
    warnings = _unknown_names(lines, os.environ, known, file_name=file_name) if known else []
    return Environment(merged, tuple(warnings))


def read_environment(env_file: str | os.PathLike[str] | None = ".env") -> dict[str, str]:
    """:func:`load_environment`'s variables, the file optional and no name checked (the bot's start)."""
    return load_environment(env_file).values


def _read_env_file(path: Path) -> tuple[dict[str, str], dict[str, int]]:
    """The file's variables and the line each is set on."""
    try:
        data = read_input_file(path, what="The settings file", max_bytes=ENV_FILE_BYTES, pipes=True)
    except InvalidInput as exc:
        raise ConfigError(exc.user_message) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        bad = f"byte {exc.object[exc.start]:#04x} on line {line}"
        raise ConfigError(f"{path.name} is not UTF-8 text ({bad}); save it as UTF-8.") from None
    lines: dict[str, int] = {}
    for binding in parse_stream(io.StringIO(text)):
        statement = binding.original.string  # starts with the blank lines before it, counted from its line
        line = binding.original.line + statement[: len(statement) - len(statement.lstrip())].count("\n")
        if binding.error:  # never quoted back: the line may hold a token
            raise ConfigError(f"{path.name} line {line} is not NAME=value; check its quotes and its '='.")
        if binding.key is not None and binding.value is None:
            raise ConfigError(f"{path.name} line {line} has no '=': write {binding.key[:60]}=value, or remove it.")
        if binding.key is not None:
            lines[binding.key] = line
    values = {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}
    return values, lines


def _unknown_names(
    lines: Mapping[str, int], environ: Iterable[str], known: Collection[str], *, file_name: str
) -> list[str]:
    """One sentence per ``T2F_`` name that is no setting, suggesting the closest setting name."""
    found = [(name, f"{file_name} line {line}: {name}") for name, line in lines.items()]
    found += [(name, f"the environment's {name}") for name in environ if name not in lines]
    warnings = []
    for name, where in found:
        if not name.startswith("T2F_") or name in known or name in OTHER_NAMES:
            continue
        nearest = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
        hint = f"did you mean {nearest[0]}?" if nearest else 'see README, "Configuration".'
        warnings.append(f"{where[:120]} is not a t2f setting and is ignored; {hint}")
    return warnings


def hf_home() -> Path:
    """``HF_HOME``, else ``$XDG_CACHE_HOME/huggingface``, as the hub library finds it (without importing it)."""
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "huggingface"
