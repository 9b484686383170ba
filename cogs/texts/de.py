"""German (``de``): the sentences of :mod:`cogs.texts.en` by the same keys, and the commands' names and
descriptions, keyed by their English text (what discord.py hands the translator).

A key missing here is said in English; the tests check that every member's command is translated.
"""

TEXTS: dict[str, str] = {
    # -- /help --
    "help.about": (
        "**t2f** macht 3D-Gesichter: Ein Gesicht wird nach deinen Worten gemalt oder einem Foto entnommen und "
        "in ein 3D-Modell verwandelt, das du herunterladen und drehen kannst."
    ),
    "help.face": (
        "`/face beschreibung:…` malt ein Gesicht nach deinen Worten und zeigt es hier allen: das Bild, den sich "
        "drehenden Kopf und das Modell (OBJ, texturiertes OBJ oder GLB). Dieselben Worte mit demselben `seed` "
        "ergeben wieder dasselbe Gesicht; `ohne` sagt, was es nicht zeigen soll."
    ),
    "help.face3d": (
        "`/face3d foto:…` (oder `avatar:@Mitglied`, oder **Apps → 3D-Gesicht machen** am Bild einer Nachricht) "
        "macht ein 3D-Gesicht aus einem Foto. Dein Foto wird nur neben dem Gesicht gezeigt, wenn du "
        "`foto_zeigen:True` wählst. Nimm nur Fotos von dir oder von Menschen, die zugestimmt haben."
    ),
    "help.face3d_off": "Gesichter aus Fotos (`/face3d`) sind auf diesem Server ausgeschaltet.",
    "help.yours": (
        "`/grenzen` zeigt, was dir heute noch bleibt; `/vergessen` löscht alles, was t2f über dich aufbewahrt."
    ),
    "help.rules": "**Auf diesem Server**",
    "help.channels_all": "`/face` geht in jedem Kanal.",
    "help.channels_some": "`/face` geht in {channels} und in deren Threads.",
    "help.limits": (
        "Jedes Mitglied darf {quota} Gesichter am Tag anfragen (neu gezählt ab Mitternacht UTC), mit höchstens "
        "{pending} gleichzeitig in Arbeit."
    ),
    "help.cooldown": "Zwischen zwei Gesichtern wartet ein Mitglied {cooldown}.",
    "help.filter": "Ein Wortfilter liest jede Beschreibung, bevor etwas gemalt wird; eine abgelehnte kostet nichts.",
    "help.filter_own": (
        "Ein Wortfilter liest jede Beschreibung, bevor etwas gemalt wird, auch mit den eigenen Wörtern dieses "
        "Servers ({count}); eine abgelehnte kostet nichts."
    ),
    "help.paused": (
        "Die Moderatoren haben die Gesichter hier vorerst angehalten: Neue Anfragen warten, bis sie weitermachen."
    ),
    "help.kept": "**Was aufbewahrt wird, und wie lange**",
    "help.kept_records": (
        "Der Eintrag jedes Gesichts (wer es wo angefragt hat, die Worte, die Einstellungen und wie es ausging) "
        "wird {days} Tage aufbewahrt und dann gelöscht."
    ),
    "help.kept_pages": "Seine Dateien und seine 3D-Seite werden {days} Tage aufbewahrt.",
    "help.kept_photos_no": "Ein Foto, das du schickst, dient nur deinem Gesicht und wird nicht aufbewahrt.",
    "help.kept_photos_yes": "Dieser Bot bewahrt die Fotos, die du schickst, {days} Tage auf.",
    "help.privacy": "Datenschutzhinweise: <{url}>",
    "help.privacy_none": (
        "Der Betreiber dieses Bots hat keine Datenschutzhinweise veröffentlicht; frag ihn danach. Mit `/vergessen` "
        "kannst du deine Daten jederzeit löschen."
    ),
    # -- /limits --
    "limits.title": "**Deine Grenzen auf diesem Server**",
    "limits.faces_left": "Heute noch: {left} von {quota} Gesichtern (neu gezählt {reset}).",
    "limits.ready": "Du kannst jetzt ein Gesicht anfragen.",
    "limits.wait": "Dein nächstes Gesicht kann {when} beginnen.",
    "limits.pending": "Gesichter in Arbeit: {pending} von höchstens {most} gleichzeitig.",
    "limits.banned": "Die Moderatoren haben dir `/face` auf diesem Server gesperrt.",
    # -- /forget and /faceadmin forget --
    "forget.ask": (
        "Das löscht alles, was t2f über deine Gesichter auf allen Servern aufbewahrt: ihre Einträge mit deinen "
        "Worten, ihre Dateien und 3D-Seiten, aufbewahrte Fotos und die Gesichter, die der Bot für dich gepostet "
        "hat. Gesichter von dir, die gerade entstehen, werden angehalten. Das lässt sich nicht rückgängig "
        "machen; um sie zu behalten, schließ diese Nachricht."
    ),
    "forget.ask_member": (
        "Das löscht alles, was t2f über die Gesichter von {member} auf diesem Server aufbewahrt: ihre Einträge, "
        "Dateien und 3D-Seiten, aufbewahrte Fotos und die Gesichter, die der Bot für {member} gepostet hat. "
        "Gesichter, die gerade entstehen, werden angehalten. Das lässt sich nicht rückgängig machen; um sie zu "
        "behalten, schließ diese Nachricht."
    ),
    "forget.button": "Meine Gesichter vergessen",
    "forget.button_member": "Diese Gesichter vergessen",
    "forget.not_yours": "Nur wer das angefragt hat, kann es bestätigen.",
    "forget.expired": "Diese Bestätigung ist abgelaufen; frag noch einmal.",
    "forget.working": "Wird vergessen…",
    "forget.done": (
        "Erledigt. Vergessene Gesichter: {faces} (beim Entstehen angehalten: {stopped}; gepostete Gesichter "
        "gelöscht: {messages}). t2f bewahrt nichts weiter über sie auf."
    ),
    "forget.done_member": (
        "Erledigt. Gesichter von {member}, auf diesem Server vergessen: {faces} (beim Entstehen angehalten: "
        "{stopped}; gepostete Gesichter gelöscht: {messages}). Das Protokoll vermerkt es, ohne ihre Worte."
    ),
    # -- /faceadmin settings --
    "settings.title": "**/face auf diesem Server**",
    "settings.channels_all": "Kanäle: jeder Kanal.",
    "settings.channels_some": "Kanäle: {channels} und deren Threads.",
    "settings.cooldown": "Wartezeit: {value} zwischen zwei Gesichtern eines Mitglieds{source}.",
    "settings.no_cooldown": "Wartezeit: keine{source}.",
    "settings.quota": "Tageskontingent: {value} Gesichter pro Mitglied{source}.",
    "settings.queue": "Warteschlange: höchstens {value} wartende Gesichter{source}.",
    "settings.pending": "Gesichter in Arbeit pro Mitglied: {value} (für den ganzen Bot).",
    "settings.photos_on": "Gesichter aus Fotos: an{source}.",
    "settings.photos_off": "Gesichter aus Fotos: aus{source}.",
    "settings.paused": "Warteschlange: von den Moderatoren angehalten.",
    "settings.running": "Warteschlange: läuft.",
    "settings.words": "Eigene Wörter im Filter ({count}):",
    "settings.words_none": "Eigene Wörter im Filter: keine.",
    "settings.bans": "Für `/face` gesperrte Mitglieder ({count}):",
    "settings.bans_none": "Für `/face` gesperrte Mitglieder: keine.",
    "settings.kept": "Einträge werden {records} Tage aufbewahrt, Dateien und 3D-Seiten {pages} Tage.",
    "settings.kept_no_pages": (
        "Einträge werden {records} Tage aufbewahrt; Dateien und Seiten werden keine aufbewahrt (der Webserver ist aus)."
    ),
    "settings.here": " (hier eingestellt)",
    "settings.default": " (Vorgabe des Bots)",
    # -- shared --
    "duration.seconds": "{count} s",
    "duration.minutes": "{count} min",
}

# Command and option names (lower case, at most 32 characters, as Discord requires); a name left out stays English.
NAMES: dict[str, str] = {
    "help": "hilfe",
    "forget": "vergessen",
    "limits": "grenzen",
    "prompt": "beschreibung",
    "negative_prompt": "ohne",
    "mesh": "format",
    "photo": "foto",
    "show_photo": "foto_zeigen",
    "member": "mitglied",
    "profile": "profil",
    "quality": "Qualität",  # the choices of /face profile
    "fast": "schnell",
    "Make a 3D face": "3D-Gesicht machen",
}

# Command, group and option descriptions (at most 100 characters), keyed by their English text.
DESCRIPTIONS: dict[str, str] = {
    # /face
    "Paint a face from your words and get it as a 3D mesh.": (
        "Male ein Gesicht nach deinen Worten und erhalte es als 3D-Modell."
    ),
    "What the face looks like (3 to 300 characters), e.g. 'a smiling woman with curly hair'": (
        "Wie das Gesicht aussieht (3 bis 300 Zeichen), z. B. 'eine lächelnde Frau mit Locken'"
    ),
    "What the picture should not show, e.g. 'glasses, blur' (up to 300 characters)": (
        "Was das Bild nicht zeigen soll, z. B. 'Brille, unscharf' (bis 300 Zeichen)"
    ),
    "Same prompt + same seed = same face; leave empty for a surprise": (
        "Gleiche Worte + gleicher Seed = gleiches Gesicht; leer lassen für eine Überraschung"
    ),
    "Denoising steps, 5 to 50: more is slower and finer": (
        "Entrauschungsschritte, 5 bis 50: mehr ist langsamer und feiner"
    ),
    "How closely to follow your words, 1 to 15 (higher is stricter)": (
        "Wie genau deine Worte befolgt werden, 1 bis 15 (höher ist strenger)"
    ),
    "File format of the 3D mesh": "Dateiformat des 3D-Modells",
    "Paint again with the next seed when the image has no usable face (default: on, off with a seed)": (
        "Mit dem nächsten Seed neu malen, wenn kein brauchbares Gesicht da ist (Vorgabe: an, aus mit Seed)"
    ),
    "Quality paints every step; fast may take shortcuts and lose a little detail (default: the bot's)": (
        "Qualität malt jeden Schritt; schnell kürzt ab und verliert etwas Detail (Vorgabe: die des Bots)"
    ),
    # /face3d
    "Make a 3D face from a photo, or from a member's avatar.": (
        "Mach ein 3D-Gesicht aus einem Foto oder dem Avatar eines Mitglieds."
    ),
    "A clear photo of one face (PNG, JPEG or WebP)": "Ein klares Foto eines Gesichts (PNG, JPEG oder WebP)",
    "Use this member's avatar instead (default: yours, when no photo is given)": (
        "Stattdessen den Avatar dieses Mitglieds nehmen (Vorgabe: deinen, wenn kein Foto da ist)"
    ),
    "Show your photo beside the 3D face in the public result (default: no)": (
        "Dein Foto im öffentlichen Ergebnis neben dem 3D-Gesicht zeigen (Vorgabe: nein)"
    ),
    # /help, /limits, /forget
    "What t2f does, this server's rules and limits, and what is kept about you.": (
        "Was t2f macht, die Regeln und Grenzen dieses Servers und was über dich aufbewahrt wird."
    ),
    "How many faces you have left today, your cooldown and your faces on the way.": (
        "Wie viele Gesichter dir heute bleiben, deine Wartezeit und deine Gesichter in Arbeit."
    ),
    "Delete everything t2f keeps about your faces (you confirm first).": (
        "Lösche alles, was t2f über deine Gesichter aufbewahrt (du bestätigst zuerst)."
    ),
    # /faceadmin (moderators)
    "Moderate /face on this server": "/face auf diesem Server moderieren",
    "Everything set for /face on this server.": "Alles, was für /face auf diesem Server eingestellt ist.",
    "Delete everything t2f keeps about a member's faces on this server.": (
        "Lösche alles, was t2f über die Gesichter eines Mitglieds auf diesem Server aufbewahrt."
    ),
    "The member whose faces to forget": "Das Mitglied, dessen Gesichter vergessen werden",
}
