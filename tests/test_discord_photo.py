"""Photos to 3D faces through SimCord: /face3d with an attachment or an avatar, and the "Make a 3D face" menu.

SimCord serves attachments from its own CDN (``https://cdn.simcord.invalid``, read by discord.py's
``Attachment.read``/``Asset.read`` through the bot's HTTP client), so the tests add that host to the
cog's allow-list; one test leaves it out and sees the bot refuse it.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
import trimesh
from discord_fixtures import PhotoTextToImage, attachment_bytes, button_ids, callbacks, moderator, world
from PIL import Image
from skimage.data import astronaut, coffee

from cogs.photo import AVATAR_PX, MENU_NAME, NO_IMAGE, PHOTOS_OFF
from t2f.files.download import DISCORD_CDN_HOSTS, DownloadLimits
from t2f.serve.faces import NO_FACE_IN_PHOTO, PHOTO_FLAGGED
from t2f.serve.store import Store

SIMCORD_CDN = "cdn.simcord.invalid"


def png(pixels) -> bytes:  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def allow_simcord(env, **limits: int) -> None:  # type: ignore[no-untyped-def]
    """Let the bot read SimCord's attachment CDN as it reads Discord's."""
    env.bot.get_cog("PhotoCog").downloads = DownloadLimits(hosts=(*DISCORD_CDN_HOSTS, SIMCORD_CDN), **limits)


async def no_jobs(store: Store, guild) -> bool:  # type: ignore[no-untyped-def]
    return not await store.recent_jobs(guild.id)


async def face_message(env, result) -> tuple:  # type: ignore[no-untyped-def]
    """The public face (a follow-up) and the private message's last text."""
    assert result.ephemeral and callbacks(env)[-1] == 5  # a private deferral: progress and refusals are private
    (public,) = result.followups
    assert not public.ephemeral
    return public, result.response.content


async def test_an_attached_photo_becomes_a_public_face_with_private_progress(
    simcord_env, store: Store, photo: PhotoTextToImage
) -> None:  # type: ignore[no-untyped-def]
    allow_simcord(simcord_env)
    _guild, channel, alice = world(simcord_env)
    result = await alice.slash(channel, "face3d", photo=("astronaut.png", png(astronaut())))
    public, private = await face_message(simcord_env, result)
    (embed,) = public.embeds
    job_id = embed.footer.text.removeprefix("job ")
    assert private == f"✅ Your face is ready below · job `{job_id}`"
    assert embed.title == "A 3D face from a photo"
    assert next((f.name, f.value) for f in embed.fields) == ("Faces seen", "1")
    assert {a.filename for a in public.attachments} == {"turntable.gif", "preview.jpg", "face.obj"}  # not the photo
    mesh = trimesh.load(io.BytesIO(await attachment_bytes(public, "face.obj")), file_type="obj", process=False)
    assert mesh.faces.shape == (86_906, 3)
    assert button_ids(public) == [f"t2f:info:{job_id}", f"t2f:delete:{job_id}"]  # no Reroll for a photo
    assert photo.prompts == [] and photo.checked == [(512, 512, 3)]  # never painted; the safety checker saw it
    record = await store.get_job(job_id)
    assert record is not None and record.source == "photo" and record.status == "done"
    assert record.face_report is not None and record.face_report.request is None  # no prompt, seed or model
    info = await alice.click(public, custom_id=f"t2f:info:{job_id}")
    fields = {f.name: f.value for f in info.response.embeds[0].fields}
    assert fields["Faces seen"] == "1" and "Seed" not in fields


async def test_the_members_photo_is_in_the_public_face_only_when_they_choose(simcord_env) -> None:  # type: ignore[no-untyped-def]
    allow_simcord(simcord_env)
    _, channel, alice = world(simcord_env)
    kept = await alice.slash(channel, "face3d", photo=("me.png", png(astronaut())))
    (public,) = kept.followups
    strip = Image.open(io.BytesIO(await attachment_bytes(public, "preview.jpg")))
    assert strip.size == (4 * 256, 256) and "image.png" not in {a.filename for a in public.attachments}  # views only
    shown = await alice.slash(channel, "face3d", photo=("me.png", png(astronaut())), show_photo=True)
    (public,) = shown.followups
    assert {a.filename for a in public.attachments} == {"turntable.gif", "preview.jpg", "image.png", "face.obj"}
    strip = Image.open(io.BytesIO(await attachment_bytes(public, "preview.jpg")))
    assert strip.size == (5 * 256, 256)  # the photo's panel, then the four views
    photo_back = Image.open(io.BytesIO(await attachment_bytes(public, "image.png")))
    assert photo_back.size == (512, 512)  # the member's own photo, as they chose


async def test_the_message_menu_uses_the_messages_picture(simcord_env, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    allow_simcord(simcord_env)
    _, channel, alice = world(simcord_env)
    jpeg = (shared_dir / "prnet" / "aflw2000-samples" / "image00050.jpg").read_bytes()
    posted = await alice.send(channel, "look", attachments=[("me.jpg", jpeg)])
    result = await alice.context_menu(channel, MENU_NAME, posted)
    public, _ = await face_message(simcord_env, result)
    assert public.embeds[0].title == "A 3D face from a message's picture"
    text_only = await alice.send(channel, "no picture here")
    refused = await alice.context_menu(channel, MENU_NAME, text_only)
    assert refused.ephemeral and refused.response.content == NO_IMAGE


async def test_an_avatar_becomes_a_face(simcord_env) -> None:  # type: ignore[no-untyped-def]
    allow_simcord(simcord_env)
    guild = simcord_env.create_guild()
    channel = guild.create_text_channel("faces")
    alice = guild.add_member(simcord_env.create_user("alice"))
    bob = guild.add_member(simcord_env.create_user("bob", avatar="a" * 32))
    # SimCord's CDN holds no avatar pictures of its own: put one where discord.py asks (simcord==3.2.1).
    url = f"https://cdn.discordapp.com/avatars/{bob.id}/{'a' * 32}.png?size={AVATAR_PX}"
    simcord_env.backend.cdn._blobs[url] = png(astronaut())
    result = await alice.slash(channel, "face3d", avatar=bob)
    public, _ = await face_message(simcord_env, result)
    assert public.embeds[0].title == "A 3D face from an avatar"
    # Without an avatar of their own a member has Discord's default one: no face in it, said kindly.
    url = f"https://cdn.discordapp.com/embed/avatars/{(alice.id >> 22) % 6}.png?size={AVATAR_PX}"
    simcord_env.backend.cdn._blobs[url] = png(coffee())
    mine = await alice.slash(channel, "face3d")
    assert mine.followups == [] and mine.response.content.startswith(NO_FACE_IN_PHOTO)


async def test_bad_files_are_refused_privately_before_any_gpu_work(
    simcord_env, store: Store, photo: PhotoTextToImage
) -> None:  # type: ignore[no-untyped-def]
    allow_simcord(simcord_env, max_bytes=2_000_000)
    guild, channel, alice = world(simcord_env)
    result = await alice.slash(channel, "face3d", photo=("notes.txt", b"not a picture at all"))
    assert result.ephemeral and callbacks(simcord_env)[-1] == 4  # refused at once: nothing was downloaded
    assert result.response.content == "That file is not an image t2f can read; send a PNG, JPEG or WebP picture."
    truncated = png(astronaut())[:20_000]
    cases = {
        ("fake.png", b"GIF89a not really"): "That file is not an image t2f can read; send a PNG, JPEG or WebP picture.",
        ("cut.png", truncated): "The image file is damaged or truncated; send it again.",
        ("huge.png", header_only_png(12_000, 9_000)): (
            "The image is too large (12000x9000 pixels is over 100 megapixels); send a smaller one."
        ),
        (
            "heavy.png",
            b"\x89PNG\r\n\x1a\n" + bytes(2_100_000),
        ): "The image is too large (2.0 MB); send one under 1.9 MB.",
    }
    for upload, message in cases.items():
        result = await alice.slash(channel, "face3d", photo=upload)
        assert result.ephemeral and result.response.content == message, upload[0]
    assert photo.checked == [] and photo.prompts == [] and await no_jobs(store, guild)


def header_only_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's first bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


async def test_a_photo_without_a_face_gets_the_friendly_refusal(simcord_env, store: Store) -> None:  # type: ignore[no-untyped-def]
    allow_simcord(simcord_env)
    _, channel, alice = world(simcord_env)
    result = await alice.slash(channel, "face3d", photo=("coffee.png", png(coffee())))
    assert result.ephemeral and result.followups == []  # nothing public
    job_id = result.response.content.rsplit("`", 2)[1]
    assert result.response.content == f"{NO_FACE_IN_PHOTO} · job `{job_id}`"
    assert result.response.attachments == []  # the photo is not echoed


@pytest.mark.text_stage("tiny_flagging")
async def test_a_flagged_upload_is_refused_privately(simcord_env) -> None:  # type: ignore[no-untyped-def]
    allow_simcord(simcord_env)
    _, channel, alice = world(simcord_env)
    result = await alice.slash(channel, "face3d", photo=("astronaut.png", png(astronaut())))
    assert result.ephemeral and result.followups == [] and result.response.attachments == []
    assert result.response.content.startswith(f"{PHOTO_FLAGGED} · job `")


async def test_only_discords_cdn_is_fetched(simcord_env, store: Store) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)  # the cog's default allow-list: Discord's CDN hosts only
    result = await alice.slash(channel, "face3d", photo=("astronaut.png", png(astronaut())))
    assert result.ephemeral and result.response.content == "Only images posted on Discord can be used."
    assert await no_jobs(store, guild)


@pytest.mark.bot_settings(user_pending=1)
async def test_photo_and_text_jobs_share_the_limits(simcord_env, store: Store) -> None:  # type: ignore[no-untyped-def]
    allow_simcord(simcord_env)
    guild, channel, alice = world(simcord_env)
    simcord_env.bot.service.pause()  # the text job waits
    queued = await alice.slash(channel, "face", prompt="a smiling astronaut")
    assert not queued.ephemeral
    result = await alice.slash(channel, "face3d", photo=("astronaut.png", png(astronaut())))
    assert result.ephemeral and callbacks(simcord_env)[-1] == 4
    assert result.response.content == "You already have 1 faces on the way; wait for one to finish."
    assert len(await store.recent_jobs(guild.id)) == 1


async def test_moderators_switch_photos_off(simcord_env, store: Store) -> None:  # type: ignore[no-untyped-def]
    allow_simcord(simcord_env)
    guild, channel, alice = world(simcord_env)
    switched = await moderator(simcord_env, guild).slash(channel, "faceadmin photos", allow=False)
    assert switched.ephemeral and switched.response.content.startswith("Photos off:")
    assert (await store.guild_settings(guild.id)).photo_input is False
    result = await alice.slash(channel, "face3d", photo=("astronaut.png", png(astronaut())))
    assert result.ephemeral and result.response.content == PHOTOS_OFF and await no_jobs(store, guild)
    # The switch does not count against the member: /face works at once (no cooldown was used).
    assert not (await alice.slash(channel, "face", prompt="a smiling astronaut")).ephemeral
