"""The PRNet stage: batched ResFCN256 inference from 256x256 crops to raw position maps."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from t2f.errors import ModelUnavailable, first_line, is_out_of_memory
from t2f.stages.compiling import bucket_for, is_compile_error, parse_compile_mode, replays_graphs
from t2f.stages.prnet.checkpoint import CONFIG_FILE, WEIGHTS_FILE, PRNetConfig, file_sha256
from t2f.stages.prnet.network import ResFCN256
from t2f.streams import StreamPerThread

FETCH_HINT = "Fetch and convert the official weights with: t2f download"
log = logging.getLogger(__name__)


class GraphedNetwork:
    """PRNet's whole GPU step replayed from one CUDA graph per batch size, captured on a size's first call.

    ``step`` maps (N, 256, 256, 3) float32 crops on the GPU to raw maps of the same shape: the layout
    and dtype changes around the network are in the graph too, so a replay is the only launch. The
    crops go in through a pinned host buffer and the maps come out through another, so both copies are
    asynchronous DMA and the call synchronises once. Replay skips ~100 kernel launches' CPU cost: a whole
    ``predict`` at fp16 batch 1 on an H200 took 13.0 ms eager, 1.32 ms replayed in channels-last and 2.43 ms
    in NCHW (bench/results/gpu-nvidia-h200.md). CUDA only.
    """

    def __init__(self, step: Callable[[torch.Tensor], torch.Tensor], device: str) -> None:
        self.step = step
        self.device = torch.device(device)
        self.graphs: dict[int, _CapturedStep] = {}
        self._lock = threading.Lock()

    def capture(self, shape: tuple[int, ...]) -> _CapturedStep:
        """Record ``step`` for crops of ``shape`` (a few eager runs on a side stream first, as CUDA needs)."""
        with torch.cuda.device(self.device):  # capture records the current device's streams: make it ours
            return self._capture(shape)

    def _capture(self, shape: tuple[int, ...]) -> _CapturedStep:
        device_in = torch.zeros(shape, dtype=torch.float32, device=self.device)
        stream = torch.cuda.Stream(device=self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(3):
                self.step(device_in)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        # "thread_local": a size the warm-up did not capture is captured in a job, on the faces thread, while
        # the GPU thread paints; in the default "global" mode the painting's own allocations would then fail.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            device_out = self.step(device_in)
        host_in = torch.zeros(shape, dtype=torch.float32, pin_memory=True)
        host_out = torch.empty(device_out.shape, dtype=device_out.dtype, pin_memory=True)
        return _CapturedStep(graph, host_in, device_in, device_out, host_out)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """(N, 256, 256, 3) float32 crops -> (N, 256, 256, 3) float32 raw maps (a new array)."""
        with self._lock:  # one size's buffers serve one call at a time (the warm-up's thread, then the faces')
            if len(crops) not in self.graphs:
                self.graphs[len(crops)] = self.capture(crops.shape)
            captured = self.graphs[len(crops)]
            captured.host_in.numpy()[...] = crops
            with torch.cuda.device(self.device):  # T2F_DEVICE=cuda:N: copies and replay on that card's stream
                captured.device_in.copy_(captured.host_in, non_blocking=True)
                captured.graph.replay()
                captured.host_out.copy_(captured.device_out, non_blocking=True)
                torch.cuda.current_stream(self.device).synchronize()  # the maps are in host_out now
            return captured.host_out.numpy().copy()  # the next call overwrites host_out


@dataclass(frozen=True)
class _CapturedStep:
    """One batch size's graph and the fixed buffers it reads and writes."""

    graph: torch.cuda.CUDAGraph
    host_in: torch.Tensor  # pinned
    device_in: torch.Tensor
    device_out: torch.Tensor  # the graph's output, overwritten by each replay
    host_out: torch.Tensor  # pinned


class PRNet:
    """Regress UV position maps from face crops.

    Parameters
    ----------
    network : a ``ResFCN256`` with weights loaded.
    config : its :class:`PRNetConfig`.
    device, dtype : where it runs (half precision is optional on CUDA).
    channels_last : NHWC memory format.
    compile_mode : a ``T2F_COMPILE`` mode: ``default`` wraps the network in ``torch.compile``;
        ``graphs`` replays it from CUDA graphs on CUDA (elsewhere it compiles as ``default``). ``True`` is ``default``.
    buckets : batch sizes the network sees when it is compiled or graphed; ``predict`` pads up to them.
    """

    def __init__(
        self,
        network: ResFCN256,
        config: PRNetConfig,
        *,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        compile_mode: bool | str = False,
        buckets: tuple[int, ...] = (),
    ) -> None:
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        network = network.to(device=device, dtype=dtype).eval()
        # Module.to(memory_format=...) works at run time; torch's overloads leave the keyword out.
        self.network = network.to(memory_format=self.memory_format)  # type: ignore[call-overload]
        mode = parse_compile_mode(compile_mode)
        self.forward: torch.nn.Module | GraphedNetwork = self.network
        if replays_graphs(mode) and str(device).startswith("cuda"):
            self.forward = GraphedNetwork(lambda crops: self._step(self.network, crops).contiguous(), device)
        elif mode != "off":  # torch.compile is lazy: the start-up warm-up compiles each bucket
            self.forward = torch.compile(self.network, dynamic=False)  # type: ignore[assignment]
        self.buckets = buckets if self.forward is not self.network else ()
        self.config = config
        self.device = device
        self.dtype = dtype
        self.streams = StreamPerThread(device)

    @property
    def compiled(self) -> bool:
        """Whether the network runs compiled or from CUDA graphs."""
        return self.forward is not self.network

    def use_eager(self) -> None:
        """Drop the compiled or graphed network (after a compile or capture error)."""
        self.forward = self.network
        self.buckets = ()

    @classmethod
    def from_pretrained(
        cls,
        folder: Path,
        *,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        compile_mode: bool | str = False,
        buckets: tuple[int, ...] = (),
    ) -> PRNet:
        """Load ``config.json`` and ``model.safetensors`` from ``folder``, verifying the checksum.

        Raises
        ------
        ModelUnavailable
            When files are missing, damaged or do not match the recorded sha256.
        """
        from safetensors.torch import load_file

        config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        if not config_path.is_file() or not weights_path.is_file():
            raise ModelUnavailable(f"PRNet weights are not in '{folder}'. {FETCH_HINT}")
        try:
            raw = json.loads(config_path.read_text(encoding="utf-8"))
            config = PRNetConfig(**{f.name: raw[f.name] for f in fields(PRNetConfig) if f.name in raw})
        except (ValueError, TypeError) as exc:
            raise ModelUnavailable(f"PRNet's {CONFIG_FILE} in '{folder}' is damaged. {FETCH_HINT}") from exc
        if config.sha256 and file_sha256(weights_path) != config.sha256:
            raise ModelUnavailable(f"PRNet's {WEIGHTS_FILE} in '{folder}' fails its sha256 check. {FETCH_HINT}")
        network = ResFCN256(base=config.base_width)
        try:
            network.load_state_dict(load_file(str(weights_path)), strict=True)
        except (RuntimeError, OSError, ValueError) as exc:
            raise ModelUnavailable(
                f"PRNet's {WEIGHTS_FILE} in '{folder}' does not fit ResFCN256. {FETCH_HINT}"
            ) from exc
        return cls(
            network,
            config,
            device=device,
            dtype=dtype,
            channels_last=channels_last,
            compile_mode=compile_mode,
            buckets=buckets,
        )

    @torch.inference_mode()
    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Run the network on a batch of crops.

        Parameters
        ----------
        crops : (N, 256, 256, 3) float32 RGB in [0, 1]

        Returns
        -------
        raw : (N, 256, 256, 3) float32 in [0, 1]; times ``config.max_pos`` it is the position map
            in crop pixels (x column, y row, z depth; larger z is nearer the camera).

        With ``buckets`` the batch is padded up to its bucket with copies of its last crop (their outputs
        are dropped) and one larger than every bucket runs in bucket-sized parts, so a compiled or
        graphed network only meets the shapes the warm-up prepared. On a GPU it runs on a stream of its
        own (:class:`t2f.streams.StreamPerThread`): the faces thread calls it while the next batch paints.
        """
        with self.streams():
            return self._predict(crops)

    def _predict(self, crops: np.ndarray) -> np.ndarray:
        res = self.config.resolution
        if crops.ndim != 4 or crops.shape[1:] != (res, res, 3):
            raise ValueError(f"crops must be (N, {res}, {res}, 3), got {crops.shape}")
        if self.buckets and len(crops) > self.buckets[-1]:
            size = self.buckets[-1]
            return np.concatenate([self._predict(crops[i : i + size]) for i in range(0, len(crops), size)])
        count = len(crops)
        if self.buckets and (extra := bucket_for(count, self.buckets) - count):
            crops = np.concatenate([crops, np.repeat(crops[-1:], extra, axis=0)])
        crops = np.ascontiguousarray(crops, dtype=np.float32)
        if isinstance(self.forward, GraphedNetwork):
            try:
                return self.forward(crops)[:count]
            except Exception as exc:
                if is_out_of_memory(exc):
                    raise
                self._fall_back(exc)
        batch = torch.from_numpy(crops).to(self.device)
        try:
            out = self._step(self._module(), batch)
        except Exception as exc:
            if not (self.compiled and is_compile_error(exc)):
                raise
            self._fall_back(exc)
            out = self._step(self._module(), batch)
        return out[:count].cpu().numpy()

    def _module(self) -> torch.nn.Module:
        """The network as a module: eager, or wrapped by ``torch.compile`` (never the graphed step)."""
        return self.network if isinstance(self.forward, GraphedNetwork) else self.forward

    def _step(self, network: Callable[[torch.Tensor], torch.Tensor], crops: torch.Tensor) -> torch.Tensor:
        """(N, 256, 256, 3) float32 crops on the device -> (N, 256, 256, 3) float32 raw maps, through ``network``."""
        batch = crops.permute(0, 3, 1, 2).to(self.dtype).contiguous(memory_format=self.memory_format)
        return network(batch).permute(0, 2, 3, 1).float()

    def _fall_back(self, exc: Exception) -> None:
        log.warning("the compiled PRNet failed (%s); running it eagerly from now on", first_line(exc))
        self.use_eager()
