"""Typed settings, read once from the environment and ``.env``.

Only ``bot.py`` and ``t2f.cli`` call :func:`load_settings`; everything else receives a
:class:`Settings`. The real environment wins over ``.env`` so an operator can override a file
without editing it. ``settings`` declares the fields (``web`` the web server's), ``values`` parses each
one, ``environment`` reads the variables and ``docs`` writes the README's table and ``.env.example``.
"""

from t2f.config.docs import env_example, settings_table
from t2f.config.environment import Environment, hf_home, load_environment, read_environment
from t2f.config.settings import EMPTY_ALLOWED, Settings, load_settings, setting_names, settings_from_mapping

__all__ = [
    "EMPTY_ALLOWED",
    "Environment",
    "Settings",
    "env_example",
    "hf_home",
    "load_environment",
    "load_settings",
    "read_environment",
    "setting_names",
    "settings_from_mapping",
    "settings_table",
]
