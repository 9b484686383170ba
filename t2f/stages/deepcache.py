"""DeepCache for a diffusers ``UNet2DConditionModel``: the deep blocks run every N steps, the shallow ones every step.

DeepCache (Ma, Fang and Wang, CVPR 2024, arXiv:2312.00858) rests on one observation: between neighbouring
denoising steps the UNet's deep, low-resolution features barely change, while its outermost blocks (full
resolution, where the skip connections carry the detail) do. So on a *refresh* step the whole UNet runs and
the input of the outer up blocks is kept; on the steps between, only the outer ``branch`` down blocks and
up blocks run, the kept features standing in for everything deeper.

Nothing of diffusers' forward is rewritten: the cached steps run the UNet's own ``forward`` on a *twin*, a
second ``UNet2DConditionModel`` object that shares every weight but whose deep blocks are stand-ins
(:class:`SkippedDown`, :class:`SkippedMid`, :class:`SkippedUp`) that compute nothing and hand the kept
features on. The features are kept by a forward hook on the last deep up block of the real UNet. Under
``torch.compile`` the real UNet and the twin are two graphs, each compiled once in the warm-up; which one a
step calls is decided in :class:`DeepCacheUNet` (plain Python, outside both graphs), so the step count is
never a guard and nothing recompiles.

The branch here counts whole blocks (``branch=1``: ``down_blocks[0]`` and ``up_blocks[-1]``); the paper's
branches also split a block by layer, so its shallowest one (branch 0) skips more than ours can.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch

from t2f.errors import ConfigError


class FeatureCache:
    """The deep features a refresh step left for the cached steps after it: ``(N, C, h, w)`` on the device."""

    def __init__(self) -> None:
        self.feature: torch.Tensor | None = None

    def capture(self, module: torch.nn.Module, args: Any, output: torch.Tensor) -> None:
        """Forward hook on the last deep up block: its output is what the outer up blocks read next."""
        self.feature = output

    def keep(self) -> None:
        """Own the captured features: a graph replayed from CUDA graphs reuses its outputs' memory at the next
        replay, so the cached steps read a copy."""
        if self.feature is not None:
            self.feature = self.feature.clone()
            # Its batch is the UNet's, which is dynamic in the compiled graphs: the twin's graph must not
            # specialise on it either (one graph for every bucket).
            torch._dynamo.maybe_mark_dynamic(self.feature, 0)


class SkippedDown(torch.nn.Module):
    """A deep down block on a cached step: its input handed on as its output and as each of its ``skips`` skip
    connections (only the deep up blocks, skipped too, would read them)."""

    def __init__(self, skips: int) -> None:
        super().__init__()
        self.skips = skips

    def forward(self, hidden_states: torch.Tensor, **kwargs: Any) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        return hidden_states, (hidden_states,) * self.skips


class SkippedMid(torch.nn.Module):
    """The middle block on a cached step: nothing."""

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return hidden_states


class SkippedUp(torch.nn.Module):
    """A deep up block on a cached step: the kept features (what the last deep up block gave at the refresh).

    ``resnets`` only has the real block's length: the UNet's forward takes that many skip connections off
    the stack for each up block.
    """

    def __init__(self, layers: int, cache: FeatureCache) -> None:
        super().__init__()
        self.resnets = [None] * layers
        self.cache = cache

    def forward(self, hidden_states: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        feature = self.cache.feature
        if feature is None:
            raise RuntimeError("a DeepCache step ran before any refresh step kept the deep features")
        return feature


def skip_count(down_block: Any) -> int:
    """How many skip connections a down block pushes: one per layer, one more for its downsampler."""
    return len(down_block.resnets) + (1 if getattr(down_block, "downsamplers", None) else 0)


def max_branch(unet: Any) -> int:
    """The deepest branch a UNet allows: all but its innermost down/up block pair."""
    return len(unet.down_blocks) - 1


def shallow_twin(unet: Any, branch: int, cache: FeatureCache) -> Any:
    """A second ``UNet2DConditionModel`` object sharing ``unet``'s weights whose blocks deeper than ``branch``
    are stand-ins: the UNet's own forward, computing only the outer ``branch`` down and up blocks.

    Raises
    ------
    ConfigError
        When ``branch`` is not between 1 and :func:`max_branch` (a small UNet has fewer blocks than SD 1.x).
    """
    if not 1 <= branch <= max_branch(unet):
        raise ConfigError(
            f"T2F_DEEPCACHE_BRANCH={branch} does not fit this model's UNet; allowed: 1 to {max_branch(unet)}."
        )
    twin = object.__new__(type(unet))
    twin.__dict__.update(unet.__dict__)
    # Its own module table and hooks: swapping blocks here must not touch the real UNet, and a hook put on
    # one (the guidance rescale, the feature capture) must not fire on the other.
    twin.__dict__["_modules"] = type(unet._modules)(unet._modules)
    for hooks in ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called"):
        twin.__dict__[hooks] = OrderedDict()
    for hooks in ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks"):
        twin.__dict__[hooks] = OrderedDict()
    deep = len(unet.down_blocks) - branch
    twin.down_blocks = torch.nn.ModuleList(
        [*unet.down_blocks[:branch], *(SkippedDown(skip_count(block)) for block in unet.down_blocks[branch:])]
    )
    twin.mid_block = SkippedMid()
    twin.up_blocks = torch.nn.ModuleList(
        [*(SkippedUp(len(block.resnets), cache) for block in unet.up_blocks[:deep]), *unet.up_blocks[deep:]]
    )
    return twin


class DeepCache:
    """DeepCache set up on one UNet: the feature hook on it, its shallow twin (compiled like the UNet).

    Parameters
    ----------
    unet : the eager diffusers ``UNet2DConditionModel`` (never the compiled wrapper: the hook goes on its block).
    interval : the whole UNet runs every ``interval`` steps (2 or more), the twin on the steps between.
    branch : how many outer down/up block pairs the cached steps still run (1 is the shallowest).
    compile_twin : wraps the twin as the UNet is wrapped (``torch.compile`` with the same mode), or ``None``.
    """

    def __init__(
        self,
        unet: Any,
        *,
        interval: int,
        branch: int,
        compile_twin: Any = None,
    ) -> None:
        if interval < 2:
            raise ValueError(f"DeepCache's interval must be 2 or more (1 refreshes every step), got {interval}")
        self.interval = interval
        self.branch = branch
        self.cache = FeatureCache()
        self.twin = shallow_twin(unet, branch, self.cache)
        self.compiled_twin = compile_twin(self.twin) if compile_twin is not None else None
        self.unet = unet
        deep = len(unet.up_blocks) - branch
        # Registered once, for good: a hook added and removed per batch would change the compiled UNet's guards.
        self.hook = unet.up_blocks[deep - 1].register_forward_hook(self.cache.capture)

    def around(self, full: torch.nn.Module, *, compiled: bool) -> DeepCacheUNet:
        """The UNet a fast-profile batch calls: ``full`` (the UNet as this batch would call it) on refresh steps,
        the twin (compiled when ``compiled``) between them; a new step count for every batch."""
        twin = self.compiled_twin if compiled and self.compiled_twin is not None else self.twin
        return DeepCacheUNet(full, twin, self.cache, self.interval, self.unet.num_upsamplers)

    def remove(self) -> None:
        self.hook.remove()


class DeepCacheUNet(torch.nn.Module):
    """The UNet as one batch's denoising loop sees it: step 0, N, 2N ... run ``full``; the others ``shallow``.

    Anything else asked of it (``config``, ``dtype``, ``device``) is the full UNet's, so the pipeline cannot
    tell it apart. A latent whose sides the UNet cannot halve ``upsamplers`` times without a remainder runs
    the full UNet every step (the twin's stand-ins cannot give the upsample sizes such a latent needs).
    """

    def __init__(
        self, full: torch.nn.Module, shallow: torch.nn.Module, cache: FeatureCache, interval: int, upsamplers: int
    ) -> None:
        super().__init__()
        self.full = full
        self.shallow = shallow
        self.cache = cache
        self.interval = interval
        self.factor = 2**upsamplers
        self.steps = 0
        self.refreshes = 0

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("full"), name)

    def forward(self, sample: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        refresh = self.steps % self.interval == 0 or any(side % self.factor for side in sample.shape[-2:])
        self.steps += 1
        if not refresh:
            return self.shallow(sample, *args, **kwargs)
        self.refreshes += 1
        output = self.full(sample, *args, **kwargs)
        self.cache.keep()
        return output
