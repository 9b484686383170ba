"""Building the real bot for SimCord tests: the real FacePipeline with tiny or photo text-to-image stages.

A tiny random diffusion model paints noise, so the success path swaps only the text-to-image
stage, through its own interface, for :class:`PhotoTextToImage` (skimage's astronaut photo).
Detection, PRNet (random weights), export and preview stay real.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image
from route_helpers import local_stages, route_of
from skimage.data import astronaut

from bot import T2FBot
from t2f.build import framing, gate_limits
from t2f.config import Settings
from t2f.faces import FaceImage, FaceRequest, StepProgress
from t2f.serve.store import Store
from t2f.stack import open_stack
from t2f.stages.pipeline import FacePipeline
from t2f.stages.text2img import PreviewSteps, TextToImage
from t2f.web.pages import FacePages, PageKeepingFiles


class PhotoTextToImage:
    """The text-to-image interface, answering every prompt with the astronaut photo at the requested size."""

    model = "test-photo/astronaut"

    def __init__(
        self,
        *,
        step_seconds: float = 0.0,
        on_paint: Callable[[], None] | None = None,
        on_step: Callable[[], None] | None = None,
    ) -> None:
        self.photo = astronaut()
        self.step_seconds = step_seconds
        self.on_paint = on_paint
        self.on_each_step = on_step  # called on the painting thread at every step (a test's clock, a gate)
        self.prompts: list[str] = []  # in the order they were painted
        self.profiles: list[str] = []  # each painted request's profile, in the same order
        self.threads: set[str] = set()
        self.checked: list[tuple[int, ...]] = []  # shapes of the photos the safety checker saw

    def check_image(self, image: np.ndarray) -> bool:
        """Nothing is flagged (the flagging checker is the tiny pipeline's: ``text_stage("tiny_flagging")``);
        a member's photo is checked here, a painted one by the painter itself (its ``nsfw`` is ``False``)."""
        self.checked.append(image.shape)
        return False

    def check_request(self, request: FaceRequest) -> None:
        TextToImage.check_request(request)

    def generate(
        self, request: FaceRequest, *, on_step: Callable[[StepProgress], None] | None = None, **options: object
    ) -> FaceImage:
        return self.generate_batch([request], on_step=on_step)[0]

    def generate_batch(
        self,
        requests: Sequence[FaceRequest],
        *,
        on_step: Callable[[StepProgress], None] | None = None,
        previews: PreviewSteps | None = None,
        check_safety: bool = True,
    ) -> list[FaceImage]:
        TextToImage.check_batch(requests)
        self.threads.add(threading.current_thread().name)
        self.prompts += [r.prompt for r in requests]
        self.profiles += [r.profile for r in requests]
        if self.on_paint is not None:
            self.on_paint()
        total = requests[0].steps
        for step in range(1, total + 1):
            time.sleep(self.step_seconds)
            if self.on_each_step is not None:
                self.on_each_step()
            if on_step is not None:
                on_step(StepProgress(step=step, total=total))
        size = requests[0].size
        image = np.asarray(Image.fromarray(self.photo).resize((size, size), Image.BILINEAR))
        return [
            FaceImage(
                request=r,
                image=image.copy(),
                nsfw=False,
                withheld_reason=None,
                dropped_prompt="",
                timings={"encode_and_denoise": 0.0, "decode": 0.0},
            )
            for r in requests
        ]


def bot_settings(tmp_path, **overrides: object) -> Settings:  # type: ignore[no-untyped-def]
    # No portrait framing by default: most tests read back the prompts the painter was given.
    values: dict[str, object] = dict(
        image_size=256,
        steps=3,
        cooldown_s=0.0,
        progress_interval_s=1.0,
        warmup=False,
        db_path=tmp_path / "t2f.sqlite3",
        user_pending=2,
        queue_capacity=60,
        prompt_template="",
        negative_default="",
    )
    values.update(overrides)
    return dataclasses.replace(Settings(), **values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def bot_on_stack(
    settings: Settings, store: Store, stages: FacePipeline, text_to_image: object, *, pages: FacePages | None = None
) -> AsyncIterator[T2FBot]:
    """A fresh bot on the serving stack (:func:`t2f.stack.open_stack`) around the shared, already-loaded
    PRNet and detector, with ``text_to_image`` swapped in as the painter's stage; with ``pages``, every face's
    files and page are kept there, as the web server's stack does (without the server itself)."""
    pipeline = FacePipeline(prnet=stages.prnet, uv=stages.uv, detector=stages.detector, text_to_image=text_to_image)
    local = local_stages(pipeline, crop=settings.face_crop, gate=gate_limits(settings), framing=framing(settings))
    route = route_of(local)
    if pages is not None:
        route = dataclasses.replace(route, files=PageKeepingFiles(route.files, pages))
    async with open_stack(settings, route, stages=local, store=store) as stack:
        yield T2FBot.on(dataclasses.replace(stack, pages=pages) if pages is not None else stack)


def painter_of(bot: T2FBot) -> Any:
    """The text-to-image stage the bot's route paints with (a test's stand-in)."""
    return bot.service.route.paint.text_to_image  # type: ignore[attr-defined]


# -- helpers for the SimCord tests ----------------------------------------------------------------


def callbacks(env) -> list[int]:  # type: ignore[no-untyped-def]
    """Interaction callback types the bot sent (4 = message, 5 = deferred)."""
    return [r.json["type"] for r in env.http_requests if r.method == "POST" and r.path.endswith("/callback")]


def original_edits(env) -> list[str]:  # type: ignore[no-untyped-def]
    """Contents of every edit of an interaction's original message, in order."""
    return [
        (r.json or {}).get("content") or ""
        for r in env.http_requests
        if r.method == "PATCH" and r.path.endswith("/messages/@original")
    ]


def world(env):  # type: ignore[no-untyped-def]
    guild = env.create_guild()
    channel = guild.create_text_channel("faces")
    alice = guild.add_member(env.create_user("alice"))
    return guild, channel, alice


def moderator(env, guild):  # type: ignore[no-untyped-def]
    import discord

    mods = guild.create_role("Mods", permissions=discord.Permissions(manage_guild=True, manage_messages=True))
    return guild.add_member(env.create_user("mod"), roles=[mods])


async def attachment_bytes(message, name: str) -> bytes:  # type: ignore[no-untyped-def]
    (attachment,) = [a for a in message.attachments if a.filename == name]
    return await attachment.read()


async def refused(env, member, channel, **options):  # type: ignore[no-untyped-def]
    before = len(painter_of(env.bot).prompts)
    result = await member.slash(channel, "face", **options)
    assert result.ephemeral and callbacks(env)[-1] == 4  # an immediate ephemeral answer, no deferral
    assert len(painter_of(env.bot).prompts) == before  # no GPU work
    return result.response.content


def button_ids(message) -> list[str]:  # type: ignore[no-untyped-def]
    return [c["custom_id"] for row in message.components for c in row["components"]]


async def burst(env, invocations: list[tuple[object, object, str, dict[str, object]]]) -> list[object]:  # type: ignore[no-untyped-def]
    """Slash commands that reach the bot together, as a real burst does: every INTERACTION_CREATE is
    emitted before the bot runs any of them, then SimCord settles once.

    SimCord's public ``slash`` settles after each command (its operations never overlap), so this goes
    one level down, to the same steps ``simcord.actors._slash`` takes (simcord==3.2.1, pinned).
    """
    from simcord import actors
    from simcord import interactions as sim_interactions
    from simcord.enums import AppCommandType, InteractionType
    from simcord.results import InteractionResult

    records = []
    for actor, channel, name, options in invocations:
        root = actors._resolve_visible_command(actor, channel.id, name.split()[0], AppCommandType.CHAT_INPUT)
        leaf, nesting = sim_interactions.walk_to_subcommand(root, name.split()[1:])
        leaf_options, resolved = sim_interactions.build_options(actor, name, leaf, options, channel_id=channel.id)
        data = {
            "id": root["id"],
            "name": root["name"],
            "type": root.get("type", AppCommandType.CHAT_INPUT),
            "options": sim_interactions.nest_options(root, nesting, leaf_options),
        }
        if resolved:
            data["resolved"] = resolved
        record, payload = sim_interactions.base_payload(
            env.backend,
            type=InteractionType.APPLICATION_COMMAND,
            channel_id=channel.id,
            guild_id=actor.guild.id,
            user_id=actor.id,
            data=data,
        )
        env._notify_dispatch_observers(record)
        env.backend.emit("INTERACTION_CREATE", payload)
        records.append(record)
    await env._settle_internal(dispatch="INTERACTION_CREATE")
    return [InteractionResult(env, record) for record in records]
