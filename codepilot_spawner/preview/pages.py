"""The few pages the preview gateway answers itself; every value in them is escaped."""

import html

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>{refresh}
<style>body{{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;color:#333}}
code{{background:#f2f2f2;padding:.1em .3em;border-radius:3px}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""

APP_DOWN = """<p>Nothing is listening on port {port} of this server.
Start your app in a terminal, for example <code>npm run dev</code>,
<code>flask run --port $PORT</code> or <code>python -m http.server $PORT</code>.</p>
<p>This page reloads by itself every few seconds.</p>"""


def page(title: str, paragraph_html: str, refresh: int = 0) -> bytes:
    """A small HTML page; ``paragraph_html`` must already be escaped."""
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return PAGE.format(title=html.escape(title), refresh=meta, body=paragraph_html).encode()


def message(title: str, text: str) -> bytes:
    return page(title, f"<p>{html.escape(text)}</p>")


def app_down(port: int) -> bytes:
    return page("No app is running yet", APP_DOWN.format(port=int(port)), refresh=5)
