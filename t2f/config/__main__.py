"""``python -m t2f.config``: the README's settings table; ``--env-example``: the text of ``.env.example``."""

import sys

from t2f.config.docs import env_example, settings_table

example = "--env-example" in sys.argv
print(env_example() if example else settings_table(), end="" if example else "\n")
