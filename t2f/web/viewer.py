"""The 3D viewer both pages show: ``<model-viewer>`` with its limits, a Reset view button, a picture for
browsers that cannot draw 3D, and the script that runs them (``/assets/viewer.js``).

- The camera stays in front of the face: a PRNet face is an open mask, so from behind it is an almost
  invisible outline. The turntable swings ±70° for the same reason; the viewer turns as far, and
  tilts ±35° (the mask's top and bottom edges show beyond that).
- Dragging (mouse, one finger) and the arrow keys turn the head; vertical finger drags still scroll
  the page (``touch-action="pan-y"``), so a phone's page does not get stuck under the viewer.
- **Reset view** puts back the opening orbit, target and zoom.
- Without WebGL (or when the model cannot be drawn) the turntable GIF takes the viewer's place, with a
  sentence saying why; without JavaScript it is shown from a ``<noscript>``.
"""

from __future__ import annotations

import html
from urllib.parse import quote

HOME_ORBIT = "0deg 90deg auto"  # straight at the face: the GLB faces +z, upright (t2f.faces.FrontalFrame)
MIN_ORBIT = "-70deg 55deg auto"
MAX_ORBIT = "70deg 125deg auto"
NO_WEBGL = "This browser cannot show the 3D view here (no WebGL), so this picture shows the head instead."
_ICON = (
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><rect width='16' height='16' rx='3' "
    "fill='#5865f2'/><ellipse cx='8' cy='8.5' rx='4.2' ry='5.2' fill='none' stroke='#fff' stroke-width='1.5'/></svg>"
)
# An inline icon: browsers then never ask the server for /favicon.ico (a 404 in every page's console).
FAVICON_LINK = '<link rel="icon" href="data:image/svg+xml,' + quote(_ICON, safe="") + '">'

VIEWER_STYLE = """
.viewer { position: relative; }
.viewer .reset-view { position: absolute; right: 8px; bottom: 8px; margin: 0; padding: 4px 10px;
  font-size: 0.85rem; background: rgba(30, 31, 34, 0.8); }
.viewer .fallback { width: 100%; aspect-ratio: 1; object-fit: contain; background: var(--panel); border-radius: 8px; }
.strip { margin: 16px 0 0; } .strip img { width: 100%; height: auto; border-radius: 8px; }
"""

VIEWER_CONTROLS_SCRIPT = """
// The 3D viewers' controls: Reset view, and the turntable in the viewer's place where WebGL is missing.
function webglWorks() {
  try {
    const canvas = document.createElement('canvas');
    return Boolean(canvas.getContext('webgl2') || canvas.getContext('webgl'));
  } catch (error) { return false; }
}
function showFallback(box) {
  const picture = box.querySelector('img.fallback');
  if (!picture.dataset.src) return;  // the serve page's viewer before its first face
  picture.src = picture.dataset.src;
  picture.hidden = false;
  box.querySelector('.no-webgl').hidden = false;
  box.querySelector('model-viewer').hidden = true;
  for (const note of document.querySelectorAll('.drag-note')) note.hidden = true;  // nothing to drag now
}
function resetView(viewer) {
  viewer.cameraOrbit = viewer.getAttribute('camera-orbit');
  viewer.cameraTarget = 'auto auto auto';
  viewer.fieldOfView = 'auto';
  // Unchanged values would be skipped: ask for the camera to be set from them again.
  for (const name of ['cameraOrbit', 'cameraTarget', 'fieldOfView']) viewer.requestUpdate(name);
}
const webgl = webglWorks();
for (const box of document.querySelectorAll('.viewer')) {
  const viewer = box.querySelector('model-viewer');
  box.querySelector('.reset-view').addEventListener('click', () => resetView(viewer));
  // A model that cannot be loaded falls back too; a lost WebGL context does not (the viewer restores it).
  viewer.addEventListener('error', (event) => { if (event.detail?.type === 'loadfailure') showFallback(box); });
  if (!webgl) showFallback(box);
}
window.t2fViewer = {webgl, showFallback, resetView};
"""


def viewer(src: str = "", fallback: str = "") -> str:
    """The viewer for the GLB at ``src`` and the picture at ``fallback`` (both relative to the page; the
    serve page sets them when a face is done), turned by mouse, touch or the arrow keys."""
    source = f' src="{html.escape(src)}"' if src else ""
    picture = f' data-src="{html.escape(fallback)}"' if fallback else ""
    alt = "The head turning" if fallback.endswith(".gif") or not fallback else "The head from the front and the side"
    noscript = (
        f'<noscript><img class="fallback" src="{html.escape(fallback)}" alt="{alt}"></noscript>' if fallback else ""
    )
    return (
        '<div class="viewer">'
        f'<model-viewer id="viewer"{source} alt="The face in 3D" camera-controls touch-action="pan-y" '
        'interaction-prompt="none" environment-image="neutral" shadow-intensity="0" exposure="1.1" '
        f'camera-orbit="{HOME_ORBIT}" min-camera-orbit="{MIN_ORBIT}" max-camera-orbit="{MAX_ORBIT}">'
        '<button type="button" class="reset-view" id="reset-view">Reset view</button></model-viewer>'
        f'<img class="fallback" id="fallback"{picture} alt="{alt}" hidden>'
        f'<p class="note no-webgl" hidden>{NO_WEBGL}</p>{noscript}</div>'
    )
