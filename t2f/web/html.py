"""The markup of the face page and the ``t2f serve`` page, their style sheet and the serve page's script.

Every value from a user (prompt, negative prompt) is escaped with :func:`html.escape`. Scripts are
files under ``/assets/`` (none inline), so the Content-Security-Policy can be ``script-src 'self'``.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from t2f.bounds import MEMBER_NEGATIVE_CHARS, MEMBER_PROMPT_CHARS, MEMBER_STEPS, SEED
from t2f.files.outputs import PREVIEW_FILE, TURNTABLE_FILE
from t2f.report import HeadPose
from t2f.web.viewer import FAVICON_LINK, VIEWER_STYLE, viewer

VIEWER_SCRIPT = "/assets/model-viewer.min.js"
CONTROLS_SCRIPT = "/assets/viewer.js"  # t2f.web.viewer.VIEWER_CONTROLS_SCRIPT
NOT_FOUND = "Not found.\n"  # the same for a forged, an expired, a deleted and a never-made face

STYLE = (
    """
:root { color-scheme: dark; --bg: #1e1f22; --panel: #2b2d31; --text: #e6e6e6; --muted: #9aa0a6; --accent: #5865f2; }
body { margin: 0; background: var(--bg); color: var(--text); font: 16px/1.45 system-ui, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
h1 { font-size: 1.4rem; margin: 0 0 16px; overflow-wrap: anywhere; }
.views { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 16px; }
.views img, model-viewer { width: 100%; aspect-ratio: 1; background: var(--panel); border-radius: 8px; }
model-viewer { display: block; height: auto; --poster-color: transparent; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 16px 0; }
dt { color: var(--muted); } dd { margin: 0; overflow-wrap: anywhere; }
.downloads a, button { display: inline-block; margin: 0 8px 8px 0; padding: 8px 14px; border-radius: 6px;
  background: var(--accent); color: #fff; text-decoration: none; border: 0; font: inherit; cursor: pointer; }
form { display: grid; gap: 8px; margin-bottom: 16px; }
textarea, input { background: var(--panel); color: var(--text); border: 1px solid #444; border-radius: 6px;
  padding: 8px; font: inherit; }
.row { display: flex; gap: 8px; flex-wrap: wrap; } .row label { display: grid; gap: 2px; }
progress { width: 100%; } #preview { width: 128px; height: 128px; image-rendering: pixelated; }
.note, small { color: var(--muted); } [role=alert] { color: #ff8a80; } [hidden] { display: none !important; }
figure { margin: 0; } #last img { width: 100%; max-width: 512px; border-radius: 8px; }
"""
    + VIEWER_STYLE
)

STUDIO_SCRIPT = """
const $ = (id) => document.getElementById(id);
window.t2fSeen = [];  // every status line shown, in order (the tests read it)
function say(text) { $('status').textContent = text; window.t2fSeen.push(text); }
function fail(text) { $('error').textContent = text; $('error').hidden = false; $('go').disabled = false; }
function statusText(state) {
  if (state.state === 'queued') return `Queued as #${state.position} · about ${Math.max(1, Math.round(state.eta_s))} s`;
  if (state.phase === 'painting' && state.total) return `Painting · step ${state.step}/${state.total}`;
  return {starting: 'Starting…', painting: 'Painting…', reconstructing: 'Building the 3D mesh…',
          exporting: 'Writing the mesh files…'}[state.phase] || 'Working…';
}
function showResult(page) {
  $('image').src = page + 'image.png';
  $('viewer').src = page + 'face.glb';
  $('fallback').dataset.src = page + 'turntable.gif';
  if (window.t2fViewer) {
    window.t2fViewer.resetView($('viewer'));
    if (!window.t2fViewer.webgl) window.t2fViewer.showFallback($('viewer').parentElement);
  }
  for (const name of ['face.obj', 'face_textured.zip', 'face.glb']) $(name).href = page + name;
  $('page').href = page;
  $('result').hidden = false;
  $('go').disabled = false;
}
function follow(jobId) {
  const events = new EventSource(`/api/faces/${jobId}/events`);
  events.onmessage = (message) => {
    const state = JSON.parse(message.data);
    if (state.state === 'done') { events.close(); say('Done.'); $('bar').value = 1; showResult(state.page); return; }
    if (state.state === 'failed') {
      events.close(); say('Stopped.'); fail(state.message);
      // The last image painted, under the reason it could not be used.
      if (state.image) { $('last-image').src = state.image; $('last').hidden = false; }
      return;
    }
    say(statusText(state));
    $('bar').value = state.total ? state.step / state.total : 0;
    if (state.preview) { $('preview').src = state.preview; $('preview').hidden = false; }
  };
  events.onerror = () => { events.close(); fail('Lost the connection to the server; reload the page.'); };
}
$('ask').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('error').hidden = true; $('result').hidden = true; $('preview').hidden = true; $('last').hidden = true;
  $('go').disabled = true;
  const seed = $('seed').value.trim();
  const body = {prompt: $('prompt').value, negative_prompt: $('negative').value,
                seed: seed === '' ? null : Number(seed), steps: Number($('steps').value)};
  let response;
  try {
    response = await fetch('/api/faces', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                          body: JSON.stringify(body)});
  } catch (error) { fail('Could not reach the server.'); return; }
  const answer = await response.json();
  if (!response.ok) { fail(answer.error); return; }
  $('progress').hidden = false;
  say('Queued…');
  follow(answer.job_id);
});
"""


def _head(title: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="referrer" content="no-referrer"><title>{html.escape(title)}</title>'
        f'<link rel="stylesheet" href="/assets/t2f.css">{FAVICON_LINK}'
        f'<script type="module" src="{VIEWER_SCRIPT}"></script>'
        f'<script type="module" src="{CONTROLS_SCRIPT}"></script></head>\n'
    )


def _pose(data: dict[str, Any]) -> str | None:
    pose = (data.get("face") or {}).get("pose_deg")
    if not pose:
        return None
    return HeadPose(**pose).text()


def public_model_name(model: object) -> str | None:
    """A model as a page may name it: a hub id (``owner/name``) as it is, a folder by its last part only.

    Pages saved before :meth:`~t2f.web.pages.FacePages.save` stripped folders may still hold a path.
    """
    if not isinstance(model, str) or not model:
        return None
    looks_like_path = model.startswith(("/", "~", ".")) or model.count("/") != 1 or "\\" in model
    return PurePosixPath(model.replace("\\", "/")).name if looks_like_path else model


def face_page(data: dict[str, Any], *, expires: int) -> str:
    """The page of one face from its saved report (``metadata.json``); file links are relative."""
    prompt = str(data.get("prompt") or "A face")
    model = data.get("model") or {}
    facts = {
        "Negative prompt": data.get("negative_prompt") or "(none)",
        "Seed": data.get("seed"),
        "Steps": data.get("steps"),
        "Guidance": data.get("guidance"),
        "Pose": _pose(data),
        "Model": public_model_name(model.get("id")),
        "Job": data.get("job_id"),
    }
    rows = "".join(
        f"<dt>{name}</dt><dd>{html.escape(str(value))}</dd>" for name, value in facts.items() if value is not None
    )
    until = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M UTC")
    # Pages saved before the file list was recorded always had the preview.
    files = set(data.get("files") or [PREVIEW_FILE])
    fallback = next((name for name in (TURNTABLE_FILE, PREVIEW_FILE) if name in files), "")
    strip = (
        f'<figure class="strip"><img src="{PREVIEW_FILE}" alt="The picture, then the head shaded from the front, '
        'at three-quarter and in profile, and textured"></figure>'
        if PREVIEW_FILE in files
        else ""
    )
    return (
        _head(f"{prompt[:80]} · t2f")
        + f"<body><main><h1>{html.escape(prompt)}</h1>"
        + '<div class="views"><img src="image.png" alt="The painted image">'
        + viewer("face.glb", fallback)
        + f"</div>{strip}<dl>{rows}</dl>"
        + '<p class="downloads"><a href="face.obj" download>OBJ</a>'
        + '<a href="face_textured.zip" download>Textured OBJ (zip)</a><a href="face.glb" download>GLB</a></p>'
        + '<p class="note"><span class="drag-note">Drag to turn the head (or use the arrow keys); Reset view '
        + f"turns it back. </span>This page and its files are deleted after {until}.</p>"
        + "</main></body></html>\n"
    )


def studio_page(*, steps: int) -> str:
    """The ``t2f serve`` page: the prompt form, live progress, then the image, the 3D view and downloads.

    The form's limits are the server's (:mod:`t2f.bounds`), so the browser refuses what the server would.
    """
    prompt, negative = MEMBER_PROMPT_CHARS, MEMBER_NEGATIVE_CHARS
    return (
        _head("t2f · text to a 3D face")
        + "<body><main><h1>Text to a 3D face</h1>"
        + f'<form id="ask"><textarea id="prompt" rows="2" required minlength="{prompt.low}" '
        + f'maxlength="{prompt.high}" placeholder="a portrait photo of a smiling woman with curly hair"></textarea>'
        + f'<div class="row"><label>Negative prompt<input id="negative" maxlength="{negative.high}" '
        + 'placeholder="glasses, blur"></label>'
        + f'<label>Seed<input id="seed" type="number" min="{SEED.low}" max="{SEED.high}" placeholder="random">'
        + f'</label><label>Steps<input id="steps" type="number" min="{MEMBER_STEPS.low}" max="{MEMBER_STEPS.high}" '
        + f'value="{steps}" required></label></div>'
        + '<div><button id="go" type="submit">Make the face</button></div></form>'
        + '<p id="error" role="alert" hidden></p>'
        + '<figure id="last" hidden><img id="last-image" alt="The last image painted for this prompt"></figure>'
        + '<section id="progress" hidden><p id="status"></p><progress id="bar" max="1" value="0"></progress>'
        + '<img id="preview" alt="The painting so far" hidden></section>'
        + '<section id="result" hidden><div class="views"><img id="image" alt="The painted image">'
        + viewer()
        + '</div><p class="downloads"><a id="face.obj" download>OBJ</a>'
        + '<a id="face_textured.zip" download>Textured OBJ (zip)</a><a id="face.glb" download>GLB</a>'
        + '<a id="page">Page of this face</a></p></section>'
        + '<script type="module" src="/assets/studio.js"></script></main></body></html>\n'
    )
