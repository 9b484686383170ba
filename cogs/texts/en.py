"""English: every sentence of ``/help``, ``/limits``, ``/forget`` and ``/faceadmin settings``/``forget``, by key.

The reference catalogue: every key is here, and another language may leave a key out (English is then
said). ``{name}`` fields are filled by :func:`cogs.texts.say`; a field holding a member's text is escaped by
the caller.
"""

TEXTS: dict[str, str] = {
    # -- /help --
    "help.about": (
        "**t2f** makes 3D faces: a face is painted from your words, or taken from a photo, and turned into a "
        "3D mesh you can download and turn around."
    ),
    "help.face": (
        "`/face prompt:…` paints a face from your words and posts it here for everyone: the picture, the head "
        "turning, and the mesh (OBJ, textured OBJ or GLB). The same words with the same `seed` give the same "
        "face again; `negative_prompt` says what it should not show."
    ),
    "help.face3d": (
        "`/face3d photo:…` (or `avatar:@member`, or **Apps → Make a 3D face** on a message's picture) makes a "
        "3D face from a photo. Your photo is shown beside the face only if you choose `show_photo:True`. Use "
        "only photos of yourself or of people who agreed."
    ),
    "help.face3d_off": "Faces from photos (`/face3d`) are switched off on this server.",
    "help.yours": "`/limits` shows what you have left today; `/forget` deletes everything t2f keeps about you.",
    "help.rules": "**On this server**",
    "help.channels_all": "`/face` works in every channel.",
    "help.channels_some": "`/face` works in {channels} and in their threads.",
    "help.limits": (
        "Each member may ask for {quota} faces a day (counted again from midnight UTC), with at most {pending} "
        "on the way at once."
    ),
    "help.cooldown": "Between two faces, a member waits {cooldown}.",
    "help.filter": "A word filter reads every prompt before anything is painted; a refused prompt costs nothing.",
    "help.filter_own": (
        "A word filter reads every prompt before anything is painted, with this server's own words ({count}) as "
        "well; a refused prompt costs nothing."
    ),
    "help.paused": "The moderators have paused faces here for now: new requests wait until they resume.",
    "help.kept": "**What is kept, and for how long**",
    "help.kept_records": (
        "Each face's record (who asked, where, the words, the settings and how it ended) is kept {days} days, "
        "then deleted."
    ),
    "help.kept_pages": "Its files and 3D page are kept {days} days.",
    "help.kept_photos_no": "A photo you send is used for your face only and is not kept.",
    "help.kept_photos_yes": "This bot keeps the photos you send, for {days} days.",
    "help.privacy": "Privacy notice: <{url}>",
    "help.privacy_none": (
        "This bot's operator has not published a privacy notice; ask them for it. You can delete your data at "
        "any time with `/forget`."
    ),
    # -- /limits --
    "limits.title": "**Your limits on this server**",
    "limits.faces_left": "Faces left today: {left} of {quota} (the count starts again {reset}).",
    "limits.ready": "You can ask for a face now.",
    "limits.wait": "Your next face can start {when}.",
    "limits.pending": "Faces on the way: {pending} of {most} at once.",
    "limits.banned": "The moderators have stopped your `/face` on this server.",
    # -- /forget and /faceadmin forget --
    "forget.ask": (
        "This deletes everything t2f keeps about your faces on every server: their records with your words, "
        "their files and 3D pages, any photo kept, and the faces the bot posted for you. Faces of yours still "
        "being made are stopped. It cannot be undone; to keep them, dismiss this message."
    ),
    "forget.ask_member": (
        "This deletes everything t2f keeps about {member}'s faces on this server: their records, files and 3D "
        "pages, any photo kept, and the faces the bot posted for them. Their faces still being made are "
        "stopped. It cannot be undone; to keep them, dismiss this message."
    ),
    "forget.button": "Forget my faces",
    "forget.button_member": "Forget their faces",
    "forget.not_yours": "Only the person who asked for this can confirm it.",
    "forget.expired": "This confirmation has expired; ask again.",
    "forget.working": "Forgetting…",
    "forget.done": (
        "Done. Faces forgotten: {faces} (stopped while being made: {stopped}; posted faces deleted: {messages}). "
        "t2f keeps nothing else about them."
    ),
    "forget.done_member": (
        "Done. Faces of {member} forgotten on this server: {faces} (stopped while being made: {stopped}; posted "
        "faces deleted: {messages}). The audit log notes it, without their words."
    ),
    # -- /faceadmin settings --
    "settings.title": "**/face on this server**",
    "settings.channels_all": "Channels: every channel.",
    "settings.channels_some": "Channels: {channels} and their threads.",
    "settings.cooldown": "Cooldown: {value} between two faces of a member{source}.",
    "settings.no_cooldown": "Cooldown: none{source}.",
    "settings.quota": "Daily quota: {value} faces per member{source}.",
    "settings.queue": "Queue cap: {value} waiting faces{source}.",
    "settings.pending": "Faces on the way per member: {value} (bot-wide).",
    "settings.photos_on": "Faces from photos: on{source}.",
    "settings.photos_off": "Faces from photos: off{source}.",
    "settings.paused": "Queue: paused by the moderators.",
    "settings.running": "Queue: running.",
    "settings.words": "Server words in the filter ({count}):",
    "settings.words_none": "Server words in the filter: none.",
    "settings.bans": "Members stopped from `/face` ({count}):",
    "settings.bans_none": "Members stopped from `/face`: none.",
    "settings.kept": "Records are kept {records} days; files and 3D pages {pages} days.",
    "settings.kept_no_pages": "Records are kept {records} days; no files or pages are kept (the web server is off).",
    "settings.here": " (set here)",
    "settings.default": " (the bot's default)",
    # -- shared --
    "duration.seconds": "{count} s",
    "duration.minutes": "{count} min",
}
