"""t2f: text to a 3D face. Stable Diffusion paints a face, PRNet lifts it into a textured mesh.

The library has no Discord imports; the bot in ``bot.py`` and ``cogs/`` is one front end, the
``t2f`` command line another.
"""

__version__ = "0.1.0"
