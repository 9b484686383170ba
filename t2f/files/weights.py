"""Finding and fetching model weights.

Loading never downloads: a stage resolves its weights from a local folder or the hub cache and
fails at once with :class:`~t2f.errors.ModelUnavailable` when they are absent. Fetching is the
explicit ``t2f download`` step, so a bot start without network can never hang on a download.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from t2f.errors import ModelUnavailable

# Pipeline components that are optional at run time when the safety checker is switched off.
SAFETY_COMPONENTS = ("safety_checker", "feature_extractor")


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are on disk.

    Attributes
    ----------
    model : the id or folder the user configured.
    folder : the local folder holding the files (a hub snapshot or the user's folder).
    revision : the commit sha of a hub snapshot, or ``None`` for a plain local folder.
    """

    model: str
    folder: Path
    revision: str | None


def is_local_reference(model: str) -> bool:
    """True when ``model`` names a folder on disk rather than a hub repository id."""
    path = Path(model).expanduser()
    if path.exists():
        return True
    # A hub id is exactly "owner/name"; anything else with a path shape is meant as a folder.
    return model.startswith((".", "/", "~")) or model.count("/") != 1


def resolve_snapshot(model: str, *, revision: str, cache_dir: Path | None) -> ResolvedModel:
    """Find ``model`` locally without touching the network.

    Raises
    ------
    ModelUnavailable
        When the folder does not exist or the hub snapshot is not in ``cache_dir``; the message
        names the model and the command that fetches it.
    """
    if is_local_reference(model):
        folder = Path(model).expanduser()
        if not folder.is_dir():
            raise ModelUnavailable(
                f"Model folder '{model}' does not exist; point T2F_MODEL at a saved pipeline folder or a hub id."
            )
        return ResolvedModel(model=model, folder=folder, revision=None)
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(model, revision=revision, cache_dir=cache_dir, local_files_only=True))
    except Exception:  # huggingface_hub raises several types for "not cached"; all mean the same here.
        raise ModelUnavailable(
            f"Model '{model}' (revision {revision}) is not downloaded in "
            f"{f'{str(cache_dir)!r}' if cache_dir else 'the Hugging Face cache'}. Fetch it with: t2f download"
        ) from None
    return ResolvedModel(model=model, folder=folder, revision=folder.name)


def check_pipeline_folder(resolved: ResolvedModel, *, skip: tuple[str, ...] = ()) -> list[str]:
    """Check a diffusers pipeline folder has every component its ``model_index.json`` lists.

    Returns the component names present. diffusers' own error for a missing component points at
    the wrong file, so this names the missing one instead.

    Raises
    ------
    ModelUnavailable
        When ``model_index.json`` or a component folder is missing.
    """
    index_file = resolved.folder / "model_index.json"
    hint = "Fetch it with: t2f download" if resolved.revision else "Save the pipeline again with save_pretrained."
    if not index_file.is_file():
        raise ModelUnavailable(
            f"Model '{resolved.model}' has no model_index.json, so it is not a diffusers pipeline. {hint}"
        )
    index = json.loads(index_file.read_text(encoding="utf-8"))
    components = [k for k, v in index.items() if not k.startswith("_") and isinstance(v, list) and v[0] is not None]
    missing = [c for c in components if c not in skip and not (resolved.folder / c).is_dir()]
    if missing:
        raise ModelUnavailable(f"Model '{resolved.model}' is incomplete: missing {', '.join(missing)}. {hint}")
    return components


def download_pipeline(model: str, *, revision: str, cache_dir: Path | None) -> ResolvedModel:
    """Fetch a diffusers pipeline from the hub into ``cache_dir`` (resumable, with progress bars).

    A local folder needs no download and is returned as it is. Only the files the pipeline loads
    are fetched (safetensors preferred, no alternative checkpoints).

    Raises
    ------
    ModelUnavailable
        When the hub cannot be reached or does not have the model or revision.
    """
    if is_local_reference(model):
        return resolve_snapshot(model, revision=revision, cache_dir=cache_dir)
    from diffusers import DiffusionPipeline

    try:
        folder = Path(DiffusionPipeline.download(model, revision=revision, cache_dir=cache_dir))
    except Exception as exc:  # network, auth and not-found errors all end the download the same way
        raise ModelUnavailable(download_failure(model, revision, exc)) from exc
    return ResolvedModel(model=model, folder=folder, revision=folder.name)


HUB_HOST = "huggingface.co"
NETWORK_ERRORS = (
    "ConnectionError",
    "ConnectError",
    "ConnectTimeout",
    "ReadTimeout",
    "Timeout",
    "gaierror",
    "LocalEntryNotFoundError",
    "OfflineModeIsEnabled",
)


def download_failure(model: str, revision: str, exc: BaseException) -> str:
    """One actionable line for a failed hub download: what went wrong, with which host, and what to do.

    The hub's own messages are long and, for a network failure, suggest offline mode; the kind of
    error (by class name, so no hub import is needed here) says more.
    """
    import textwrap

    from huggingface_hub import constants

    name, text = type(exc).__name__, str(exc)
    start = f"Could not download '{model}' (revision {revision})"
    if name == "GatedRepoError" or " 401 " in f" {text} " or "401 Client Error" in text:
        return f"{start}: {HUB_HOST} wants a login for it. Accept its licence on {HUB_HOST}, set HF_TOKEN, try again."
    if name == "RepositoryNotFoundError":
        return f"{start}: {HUB_HOST} has no such model. Check T2F_MODEL."
    if name == "RevisionNotFoundError":
        return f"{start}: the model has no such revision. Check T2F_MODEL_REVISION."
    if constants.HF_HUB_OFFLINE:
        return f"{start}: HF_HUB_OFFLINE is set, so nothing can be downloaded. Unset it and try again."
    causes = [type(e).__name__ for e in (exc, exc.__cause__, exc.__context__) if e is not None]
    if any(cause in NETWORK_ERRORS for cause in causes) or isinstance(exc, OSError):
        return f"{start}: {HUB_HOST} could not be reached ({name}). Check the network and try again."
    reason = textwrap.shorten(text.strip().splitlines()[0] if text.strip() else name, 200, placeholder="…")
    return f"{start}: {reason}. Check the network and the model id."
