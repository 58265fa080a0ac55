"""The few pages the preview gateway answers itself; every value in them is escaped."""

import html
import json

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>{refresh}
<style>body{{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;color:#333}}
code{{background:#f2f2f2;padding:.1em .3em;border-radius:3px}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""

APP_DOWN = """<p>Nothing is listening on port {port} of this server.
Start your app in a terminal as your project's README says, for example
<code>npm run dev</code> or <code>python app.py</code>.</p>
<p>Was it running? Look at its terminal: it may have stopped with an error.</p>
<p>This page reloads by itself every few seconds.</p>"""


def page(title: str, paragraph_html: str, refresh: int = 0) -> bytes:
    """A small HTML page; ``paragraph_html`` must already be escaped."""
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return PAGE.format(title=html.escape(title), refresh=meta, body=paragraph_html).encode()


def message(title: str, text: str) -> bytes:
    return page(title, f"<p>{html.escape(text)}</p>")


def app_down(port: int) -> bytes:
    return page("No app is answering", APP_DOWN.format(port=int(port)), refresh=5)


BOUNCE = """<p>Opening the preview&hellip;</p>
<noscript><p><a href="{href}">Continue to the preview</a></p></noscript>
<script>
const path = {path};
const last = JSON.parse(sessionStorage.getItem("codepilot-preview-bounce") || "{{}}");
if (last.path === path && Date.now() - last.at < 5000) {{
  document.body.insertAdjacentHTML("beforeend", "<p>Your browser sends no <code>Referer</code>"
    + " to this preview, which it needs over plain HTTP. Allow it for this site, or ask"
    + " for previews over HTTPS.</p>");
}} else {{
  sessionStorage.setItem("codepilot-preview-bounce", JSON.stringify({{path, at: Date.now()}}));
  location.replace(path);
}}
</script>"""


def bounce(path: str) -> bytes:
    """A page of the preview's own that asks for ``path`` again, now with the preview as
    its referrer (over plain HTTP, the proof that the request comes from the preview)."""
    as_js = json.dumps(path).replace("<", "\\u003c").replace(">", "\\u003e")
    return page("Opening the preview", BOUNCE.format(path=as_js, href=html.escape(path)))
