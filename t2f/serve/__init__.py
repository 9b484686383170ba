"""The serving layer: jobs and their statuses (``jobs``), the fair queue (``queue``), the job service and
its worker thread (``service``), backends that run the stages (``backend``), admission (``policy``),
the prompt filter (``moderation``), SQLite storage (``store``, rows in ``records``) and fitting files
to an upload budget (``uploads``).

It may use the stages, the exporters and everything below them; it never imports discord. A new
backend (for example a distributed one) goes here, behind ``service.FaceBackend``.
"""
