"""Exporters: pure functions from a ``FaceMesh`` (or ``FaceResult``) to file bytes: OBJ, textured OBJ,
GLB, the preview strip, and ``package`` (every file of a face at once).

They use the base layer and ``t2f.files`` only; nothing here writes to disk. A new format goes here.
"""
