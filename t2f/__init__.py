"""t2f: text to a 3D face. Stable Diffusion paints a face, PRNet lifts it into a textured mesh.

Layers, each importing only the ones listed after it (``tests/test_layout.py`` enforces this):

- ``t2f.cli`` / ``t2f.commands`` (the ``t2f`` command) and ``t2f.build`` (stages from settings), with
  ``t2f.config`` (settings);
- ``t2f.serve``: jobs, queue, service, backends, admission, moderation, store;
- ``t2f.stages`` (text-to-image, detection, PRNet) and ``t2f.export`` (OBJ, GLB, preview);
- ``t2f.files``: weights, downloads, images, writing outputs;
- the base: ``t2f.errors``, ``t2f.bounds``, ``t2f.faces``, ``t2f.report``, ``t2f.timing``.

``bot.py`` and ``cogs/`` (the Discord bot) sit on top and are the only code that imports discord.
"""

__version__ = "0.1.0"
