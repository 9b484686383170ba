"""Mesh writers: pure functions of a ``FaceMesh`` that return ``str`` or ``bytes``; they never touch the disk."""
