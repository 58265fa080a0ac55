"""A Flask starter: `python app.py`.

The Preview tile shows it: it serves on $PORT, the port the preview forwards to. Flask's
debug reloader restarts the app when a file changes, and the page reloads itself then.
"""

import logging
import os
import time

from flask import Flask

app = Flask(__name__)
STARTED = str(time.time())  # new each time the reloader restarts the app

# Every second the page asks when the app started; a new answer means app.py changed.
LIVE_RELOAD = """<script>
setInterval(async () => {
  try {
    const response = await fetch("started");
    if (response.ok && (await response.text()) !== "%s") location.reload();
  } catch (error) {}  // restarting right now: ask again next time
}, 1000);
</script>"""


@app.get("/started")
def started():
    return STARTED


class QuietLiveReload(logging.Filter):
    """Keeps the page's once-a-second question out of the terminal's request log."""

    def filter(self, record):
        return "GET /started " not in record.getMessage()


logging.getLogger("werkzeug").addFilter(QuietLiveReload())


@app.get("/")
def index():
    return "<h1>Hello from Flask</h1><p>Edit app.py and watch this page.</p>" + (
        LIVE_RELOAD % STARTED
    )


if __name__ == "__main__":
    app.run(
        host="127.0.0.1",
        port=int(os.environ.get("PORT", "3000")),
        debug=True,
        # JupyterLab's checkpoint copies are no reason to restart a second time.
        exclude_patterns=["*/.ipynb_checkpoints/*"],
    )
