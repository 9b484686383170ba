"""SimCord: the persistent buttons, cancelling, and jobs that outlive a restart of the bot."""

from __future__ import annotations

import discord
from discord_fixtures import PhotoTextToImage, button_ids, world

from t2f.serve.store import Store


async def test_buttons_work_after_a_restart(simcord_env, fresh_bot, settings, store, stages, photo) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    bob = guild.add_member(simcord_env.create_user("bob"))
    first = await alice.slash(channel, "face", prompt="a smiling astronaut", seed=7)
    job_id = first.response.embeds[0].footer.text.removeprefix("job ")
    await simcord_env.restart_bot(await fresh_bot())  # a fresh bot: no in-memory state

    info = await bob.click(first.response, custom_id=f"t2f:info:{job_id}")
    assert info.ephemeral
    (embed,) = info.response.embeds
    assert embed.description == "a smiling astronaut"
    assert {f.name: f.value for f in embed.fields}["Seed"] == "7"

    refused_delete = await bob.click(first.response, custom_id=f"t2f:delete:{job_id}")
    assert refused_delete.ephemeral
    assert refused_delete.response.content == "Only the person who asked for this face or a moderator can delete it."

    reroll = await bob.click(first.response, custom_id=f"t2f:reroll:{job_id}")
    new_message = reroll.response
    assert new_message.embeds and new_message.embeds[0].title == "a smiling astronaut"
    assert {f.name: f.value for f in new_message.embeds[0].fields}["Seed"] != "7"  # a new seed
    assert photo.prompts == ["a smiling astronaut", "a smiling astronaut"]

    deleted = await alice.click(first.response, custom_id=f"t2f:delete:{job_id}")
    assert deleted.ephemeral and deleted.response.content == "Deleted."
    assert first.response is None  # the message is gone


async def test_a_fast_face_says_so_and_its_reroll_is_fast_too(simcord_env, photo) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    made = await alice.slash(channel, "face", prompt="a smiling astronaut", profile="fast")
    (card,) = made.response.embeds
    assert {f.name: f.value for f in card.fields}["Profile"] == "fast"
    job_id = card.footer.text.removeprefix("job ")
    (info,) = (await alice.click(made.response, custom_id=f"t2f:info:{job_id}")).response.embeds
    assert {f.name: f.value for f in info.fields}["Profile"] == "fast"
    reroll = await alice.click(made.response, custom_id=f"t2f:reroll:{job_id}")
    assert {f.name: f.value for f in reroll.response.embeds[0].fields}["Profile"] == "fast"
    plain = await alice.slash(channel, "face", prompt="a smiling astronaut")  # none chosen: T2F_PROFILE's
    assert {f.name: f.value for f in plain.response.embeds[0].fields}["Profile"] == "quality"
    assert photo.profiles == ["fast", "fast", "quality"]


async def test_queued_jobs_resume_after_a_restart(simcord_env, fresh_bot, settings, store, stages, photo) -> None:  # type: ignore[no-untyped-def]
    import time

    from t2f.serve.records import JobRecord

    guild, channel, alice = world(simcord_env)
    # What a previous run left behind: one job queued 20 minutes ago (its token long expired).
    await store.add_job(
        JobRecord(
            id="0123456789ab",
            user_id=alice.id,
            guild_id=guild.id,
            channel_id=channel.id,
            prompt="a resumed astronaut",
            negative_prompt="",
            seed=3,
            steps=3,
            guidance=7.5,
            size=256,
            output="glb",
            status="queued",
            created_at=time.time() - 20 * 60,
            interaction_token="expired",
            application_id=1,
        )
    )
    await simcord_env.restart_bot(await fresh_bot())
    message = channel.last_message
    assert message.content == f"<@{alice.id}> your face is ready."
    assert {a.filename for a in message.attachments} == {"turntable.gif", "preview.jpg", "image.png", "face.glb"}
    record = await store.get_job("0123456789ab")
    assert record is not None and record.status == "done" and record.interaction_token is None
    assert photo.prompts == ["a resumed astronaut"]


async def test_restart_resumes_through_a_live_token_and_does_not_resync(
    simcord_env, fresh_bot, settings, store, stages, photo
) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    simcord_env.bot.service.pause()
    queued = await alice.slash(channel, "face", prompt="a patient astronaut")
    assert queued.response.content.startswith("⏳ Queued as #1")
    await simcord_env.restart_bot(await fresh_bot())  # the queued job only survives in SQLite
    message = queued.response  # the same message, edited through the stored token
    assert message.embeds and message.embeds[0].title == "a patient astronaut"
    assert {a.filename for a in message.attachments} == {"turntable.gif", "preview.jpg", "image.png", "face.obj"}
    syncs = [r for r in simcord_env.http_requests if r.method == "PUT" and r.path.endswith("/commands")]
    assert len(syncs) == 1  # the tree did not change, so the restart did not sync again


async def test_cancel_button_is_for_the_author(simcord_env, photo: PhotoTextToImage) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    bob = guild.add_member(simcord_env.create_user("bob"))
    simcord_env.bot.service.pause()
    queued = await alice.slash(channel, "face", prompt="a smiling astronaut")
    (cancel_id,) = button_ids(queued.response)
    assert cancel_id.startswith("t2f:cancel:")
    other = await bob.click(queued.response, custom_id=cancel_id)
    assert other.ephemeral and other.response.content == "Only the person who asked for this face can cancel it."
    mine = await alice.click(queued.response, custom_id=cancel_id)
    assert mine.ephemeral and mine.response.content == "Cancelled."  # it was waiting: stopped at once
    simcord_env.bot.service.resume()
    await simcord_env.settle()
    assert queued.response.content.startswith("Cancelled. · job `")
    assert photo.prompts == []  # it never reached the GPU
    job_id = cancel_id.removeprefix("t2f:cancel:")
    assert (await simcord_env.bot.store.get_job(job_id)).status == "cancelled"  # not resumed after a restart


async def test_buttons_of_a_forgotten_job_still_answer(simcord_env, store: Store) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    result = await alice.slash(channel, "face", prompt="a smiling astronaut")
    job_id = result.response.embeds[0].footer.text.removeprefix("job ")
    await store._run("DELETE FROM jobs WHERE id = ?", (job_id,))  # e.g. a database reset by the operator
    for action in ("info", "reroll", "delete"):
        answer = await alice.click(result.response, custom_id=f"t2f:{action}:{job_id}")
        assert answer.ephemeral and answer.response.content == "This face is no longer in the records."


async def test_cancel_after_the_face_is_done_says_so(simcord_env) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    result = await alice.slash(channel, "face", prompt="a smiling astronaut")
    job_id = result.response.embeds[0].footer.text.removeprefix("job ")
    queued_message = next(
        r for r in simcord_env.http_requests if r.method == "PATCH" and "components" in (r.json or {})
    )
    cancel_id = queued_message.json["components"][0]["components"][0]["custom_id"]
    assert cancel_id == f"t2f:cancel:{job_id}"
    # The final message replaced the Cancel button; a stale client can still send the click.
    from cogs.buttons import CancelButton

    stale = await simcord_env.bot.get_channel(channel.id).send(
        "stale", view=discord.ui.View().add_item(CancelButton(job_id))
    )
    answer = await alice.click(stale, custom_id=cancel_id)
    assert answer.ephemeral and answer.response.content == "This face is already finished."


async def test_info_shows_a_prompt_s_markdown_as_text_not_a_link(simcord_env) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    prompt = "[free nitro](https://nitro.example) a **bold** astronaut"
    made = await alice.slash(channel, "face", prompt=prompt, negative_prompt="[x](https://y.example)")
    job_id = made.response.embeds[0].footer.text.removeprefix("job ")
    (embed,) = (await alice.click(made.response, custom_id=f"t2f:info:{job_id}")).response.embeds
    assert embed.description == r"\[free nitro](https://nitro.example) a \*\*bold\*\* astronaut"
    assert {f.name: f.value for f in embed.fields}["Negative prompt"] == r"\[x](https://y.example)"


async def test_deleting_a_face_already_gone_still_says_deleted(simcord_env) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    made = await alice.slash(channel, "face", prompt="a smiling astronaut")
    job_id = made.response.embeds[0].footer.text.removeprefix("job ")
    # A second click (or a moderator) deleted the message between this click and its delete.
    simcord_env.inject_error("DELETE", "/channels/*/messages/*", status=404, code=10008, message="Unknown Message")
    deleted = await alice.click(made.response, custom_id=f"t2f:delete:{job_id}")
    assert deleted.ephemeral and deleted.response.content == "Deleted." and deleted.followups == []


async def test_reroll_outside_a_server_is_refused_with_a_sentence() -> None:
    # No message offers Reroll in a DM (a DM'd face has Info and Delete only), so the interaction is built here.
    from types import SimpleNamespace

    from cogs.buttons import REROLL_IN_SERVER, RerollButton

    said: list[tuple[str, dict[str, object]]] = []

    async def send_message(text: str, **options: object) -> None:
        said.append((text, options))

    interaction = SimpleNamespace(guild_id=None, client=None, response=SimpleNamespace(send_message=send_message))
    await RerollButton("0123456789ab").run(interaction)  # type: ignore[arg-type]
    assert said == [("Reroll works in the server where the face was made.", {"ephemeral": True})]
    assert said[0][0] == REROLL_IN_SERVER
