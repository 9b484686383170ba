"""Painting profiles: what a batch's ``quality`` or ``fast`` profile changes in the denoising loop.

``quality`` is the pipeline as it is. ``fast`` may swap two of its parts for the batch's length, each off
until the operator switches it on (README "GPU fast path", what each costs): the scheduler's noise levels
spaced as Karras et al. do (``T2F_KARRAS_SIGMAS``), and the UNet for :mod:`t2f.stages.deepcache`'s
(``T2F_DEEPCACHE_INTERVAL``, ``T2F_DEEPCACHE_BRANCH``). Its fewer steps are the request's own
(``T2F_FAST_STEPS``, applied where requests get their defaults). A batch has one profile (the serving
queue groups by it), so the swap is per pipeline call. Importing this module costs no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from t2f.stages.deepcache import DeepCache


@dataclass(frozen=True)
class FastProfile:
    """What the ``fast`` profile changes; the defaults change nothing.

    Attributes
    ----------
    karras_sigmas : Karras noise levels (``use_karras_sigmas``) for the fast profile's batches.
    deepcache_interval : the whole UNet every this many steps, the shallow branch between; 0 or 1: off.
    deepcache_branch : how many outer down/up block pairs DeepCache's cached steps still run (1: fewest).
    """

    karras_sigmas: bool = False
    deepcache_interval: int = 0
    deepcache_branch: int = 1

    @property
    def deepcache(self) -> bool:
        """Whether DeepCache is on (an interval of 2 or more)."""
        return self.deepcache_interval > 1


def karras_twin(scheduler: Any) -> Any:
    """The same diffusers scheduler, configured alike, with Karras sigmas.

    Raises
    ------
    ValueError
        When the scheduler's class has no Karras sigmas (PNDM, DDIM, Euler ancestral).
    """
    if "use_karras_sigmas" not in scheduler.config:
        raise ValueError(f"{type(scheduler).__name__} has no Karras sigmas")
    return type(scheduler).from_config(scheduler.config, use_karras_sigmas=True)


class ProfileSwitch:
    """The fast profile set up on one pipeline: its scheduler and DeepCache, swapped in per batch.

    Parameters
    ----------
    pipeline : the diffusers pipeline (its UNet may already be the compiled wrapper).
    fast : what the fast profile changes.
    compile_twin : compiles DeepCache's shallow twin as the UNet is compiled, or ``None`` (eager).
    """

    def __init__(
        self,
        pipeline: Any,
        fast: FastProfile,
        *,
        compile_twin: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
    ) -> None:
        self.fast = fast
        self.scheduler = karras_twin(pipeline.scheduler) if fast.karras_sigmas else None
        self.deepcache: DeepCache | None = None
        if fast.deepcache:
            from t2f.stages.deepcache import DeepCache

            unet = getattr(pipeline.unet, "_orig_mod", pipeline.unet)
            self.deepcache = DeepCache(
                unet, interval=fast.deepcache_interval, branch=fast.deepcache_branch, compile_twin=compile_twin
            )

    @property
    def warm_profiles(self) -> tuple[str, ...]:
        """The profiles whose batches the warm-up must paint: ``fast`` too where it runs a UNet graph of its own."""
        return ("quality", "fast") if self.deepcache is not None else ("quality",)

    @contextmanager
    def painting(self, pipeline: Any, profile: str) -> Iterator[None]:
        """Within: ``pipeline`` set up for a batch of ``profile``, around whichever UNet it holds now (compiled,
        eager or the static one); given back as it was after."""
        unet, scheduler = pipeline.unet, pipeline.scheduler
        if profile == "fast" and self.scheduler is not None:
            pipeline.scheduler = self.scheduler
        if profile == "fast" and self.deepcache is not None:
            pipeline.unet = self.deepcache.around(unet, compiled=hasattr(unet, "_orig_mod"))
        try:
            yield
        finally:
            pipeline.unet, pipeline.scheduler = unet, scheduler
            if self.deepcache is not None:  # the hook also keeps a quality batch's last features: let them go
                self.deepcache.cache.feature = None

    def use_eager(self) -> None:
        """After a compile error: DeepCache's twin eager too."""
        if self.deepcache is not None:
            self.deepcache.compiled_twin = None

    def remove(self) -> None:
        """Take DeepCache's hook off the UNet (before another switch replaces this one)."""
        if self.deepcache is not None:
            self.deepcache.remove()
