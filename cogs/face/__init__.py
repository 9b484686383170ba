"""The ``/face`` cog as a package: the command (``command``), following a job's progress (``follow``),
delivering its result (``delivery``) and resuming jobs after a restart (``resume``)."""

from cogs.face.command import FaceCog, MeshFormat, setup
from cogs.face.follow import Deliver, EditMessage

__all__ = ["Deliver", "EditMessage", "FaceCog", "MeshFormat", "setup"]
