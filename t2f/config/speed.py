"""The fast profile's settings and the compile options still to be measured on a GPU (README "GPU fast path").

:class:`SpeedSettings` is a base of :class:`t2f.config.Settings`, so its fields are read and documented like
every other setting; it lives here because the fast profile is a subject of its own. Every part is off by
default: none has been timed on a GPU yet, and each trades some image quality for time.
"""

from __future__ import annotations

from dataclasses import dataclass

from t2f import bounds
from t2f.config.values import setting


@dataclass(frozen=True)
class SpeedSettings:
    """What the ``fast`` profile changes, the operator's default profile, and the VAE compile switch."""

    profile: str = setting(
        "T2F_PROFILE",
        "quality",
        "Profile of a face whose member chose none (`/face profile`): `quality` paints the full loop, `fast` "
        "what T2F_FAST_STEPS, T2F_KARRAS_SIGMAS and T2F_DEEPCACHE_INTERVAL switch on (nothing, until they are).",
        allowed=", ".join(bounds.PROFILES),
    )
    fast_steps: int = setting(
        "T2F_FAST_STEPS",
        0,
        "Denoising steps of a `fast` face whose member chose none; 0: T2F_STEPS.",
        allowed=f"0, {bounds.MEMBER_STEPS.text}",
    )
    karras_sigmas: bool = setting(
        "T2F_KARRAS_SIGMAS",
        False,
        "Karras et al.'s noise levels in the `fast` profile (denser near the end of the loop, meant for fewer "
        "steps); needs T2F_SCHEDULER dpmpp, euler or unipc.",
        allowed="on, off",
    )
    deepcache_interval: int = setting(
        "T2F_DEEPCACHE_INTERVAL",
        0,
        "DeepCache in the `fast` profile: the whole UNet every this many steps, only its outer blocks on the "
        "steps between (their deep features kept from the last whole step); 0 or 1: off.",
        allowed=bounds.DEEPCACHE_INTERVAL.text,
    )
    deepcache_branch: int = setting(
        "T2F_DEEPCACHE_BRANCH",
        1,
        "How many outer down/up block pairs DeepCache's in-between steps still run: 1 is the fastest, 3 (of "
        "SD 1.x's 4) the closest to the whole UNet.",
        allowed=bounds.DEEPCACHE_BRANCH.text,
    )
    compile_vae: bool = setting(
        "T2F_COMPILE_VAE",
        False,
        "With T2F_COMPILE on, compile the VAE decode too, its conversion to bytes in the same graph; off: the "
        "decode runs eagerly.",
        allowed="on, off",
    )
