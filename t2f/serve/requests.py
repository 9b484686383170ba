"""One place that turns what a member (or the operator) asked for into a :class:`~t2f.faces.FaceRequest`.

``None`` means "not given": the default (``T2F_PROFILE``, ``T2F_STEPS`` or the fast profile's
``T2F_FAST_STEPS``, ``T2F_GUIDANCE``, a random seed) is used. Any
number that is given is the asker's own and is judged as it is: a ``0`` is never read as "the default"
(0 steps is refused with a sentence). The bot's ``/face``, the web page and the command line all build
their requests here, so a value means the same thing everywhere.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from t2f.bounds import check_face_request
from t2f.faces import FaceRequest


@dataclass(frozen=True)
class RequestDefaults:
    """What a request gets for what it leaves out.

    Parameters
    ----------
    steps, guidance : ``T2F_STEPS``, ``T2F_GUIDANCE``.
    size : ``T2F_IMAGE_SIZE``, the side of the painted square in pixels (never the member's choice).
    max_repaints : ``T2F_MAX_REPAINTS``, more seeds tried when an image has no usable face.
    profile : ``T2F_PROFILE``, ``quality`` or ``fast``.
    fast_steps : ``T2F_FAST_STEPS``, the steps of a ``fast`` request that gives none; 0: ``steps``.
    """

    steps: int = 25
    guidance: float = 7.5
    size: int = 512
    max_repaints: int = 2
    profile: str = "quality"
    fast_steps: int = 0

    def request(
        self,
        prompt: str,
        *,
        negative_prompt: str = "",
        seed: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        profile: str | None = None,
    ) -> FaceRequest:
        """The request, with the defaults where a value is ``None`` and a random seed when none is given.

        A ``fast`` request that gives no steps gets ``fast_steps`` (when set); steps it gives are its own.

        Raises
        ------
        InvalidRequest
            When a given value is outside what the stages accept (``check_face_request``), quoting it.

        Examples
        --------
        >>> defaults = RequestDefaults(steps=25, guidance=7.5, size=512)
        >>> defaults.request("a smiling woman", seed=7).steps
        25
        >>> RequestDefaults(steps=25, fast_steps=15).request("a smiling woman", profile="fast").steps
        15
        >>> defaults.request("a smiling woman", seed=7, steps=0)
        Traceback (most recent call last):
        ...
        t2f.errors.InvalidRequest: Steps 0 is not allowed; use 1 to 150.
        """
        profile = self.profile if profile is None else profile
        default_steps = self.fast_steps if profile == "fast" and self.fast_steps else self.steps
        face = FaceRequest(
            prompt=prompt,
            negative_prompt=negative_prompt,
            seed=secrets.randbelow(2**32) if seed is None else seed,  # short enough to read and type back
            steps=default_steps if steps is None else steps,
            guidance=self.guidance if guidance is None else guidance,
            size=self.size,
            profile=profile,
        )
        return check_face_request(face)

    def repaints(self, *, seed: int | None, repaint: bool | None = None) -> int:
        """How many more seeds a job may paint: ``max_repaints`` unless the asker chose the seed (a chosen
        seed paints that seed only), or said so with ``repaint``.

        Examples
        --------
        >>> RequestDefaults(max_repaints=2).repaints(seed=None), RequestDefaults(max_repaints=2).repaints(seed=5)
        (2, 0)
        >>> RequestDefaults(max_repaints=2).repaints(seed=5, repaint=True)
        2
        """
        wanted = seed is None if repaint is None else repaint
        return self.max_repaints if wanted else 0
