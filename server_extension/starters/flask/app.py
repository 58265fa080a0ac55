"""A Flask starter: see README.md to install Flask in a venv, then `python app.py`.

The Preview tile shows it: it serves on $PORT, the port the preview forwards to."""

import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "<h1>Hello from Flask</h1><p>Edit app.py and reload.</p>"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "3000")), debug=True)
