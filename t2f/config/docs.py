"""The settings written out for people: the README's table and ``.env.example``."""

from __future__ import annotations

import dataclasses

from t2f.config.settings import Settings


def documented_fields() -> list[dataclasses.Field[object]]:
    """Every setting in reading order: :class:`Settings`' own fields, then each base's in the order it is
    named (the fast profile's, then the web server's).

    A dataclass lists a base's fields first; people read the models' settings first.
    """
    declared = {}  # field name -> the place of the class that declares it in Settings' MRO
    for place, cls in reversed(list(enumerate(Settings.__mro__))):
        declared.update(dict.fromkeys(vars(cls).get("__annotations__", {}), place))
    return sorted(dataclasses.fields(Settings), key=lambda f: declared[f.name])


def _default_text(default: object) -> str:
    """A default as it is written in ``.env``: on/off, comma-separated ids, or the plain value."""
    if default is None:
        return ""
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, tuple):
        return ",".join(map(str, default))
    return str(default)


def settings_table() -> str:
    """Markdown table of every setting, for the README."""
    rows = ["| variable | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    for f in documented_fields():
        shown = _default_text(f.default) or "(empty)"
        rows.append(f"| `{f.metadata['env']}` | `{shown}` | {f.metadata['allowed'] or 'any'} | {f.metadata['doc']} |")
    return "\n".join(rows)


def env_example() -> str:
    """The text of ``.env.example``: the token blank, every setting commented out at its default.

    Nothing but the token is set, so a copy changes nothing until a line is uncommented; in particular
    it never moves the paths a Docker image points at its volume.
    """
    lines = [
        "# t2f settings. Copy to .env (git-ignored) and fill in. The real environment overrides this file.",
        "",
        "# Discord bot token from the Developer Portal (Bot tab). Secret: never commit it.",
        "DISCORD_TOKEN=",
        "",
        '# Models, inference, the bot\'s limits, storage and logs (see README, "Configuration").',
        "# Every line below shows the default; uncomment a line to change it.",
    ]
    for f in documented_fields():
        shown = _default_text(f.default)
        allowed = f" Allowed: {f.metadata['allowed']}." if f.metadata["allowed"] else ""
        lines += [f"# {f.metadata['doc']}{allowed}", f"# {f.metadata['env']}={shown}"]
    return "\n".join(lines) + "\n"
