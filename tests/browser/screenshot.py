"""The README's picture: the IDE and the preview of the app it runs, side by side."""

import base64
import os
from pathlib import Path

from playwright.sync_api import Page

from ..support.hubtools import REPO_ROOT

README_SCREENSHOT = REPO_ROOT / "docs" / "screenshot.png"
# docs/screenshot.png is committed: it is only rewritten on request, so that `make test`
# leaves the tree clean.
UPDATE_VARIABLE = "CODEPILOT_UPDATE_SCREENSHOT"

SIDE_BY_SIDE = """<!doctype html>
<html><head><style>
body {{ margin: 0; }}
#sheet {{ display: inline-flex; gap: 12px; padding: 12px; background: #d0d4d8;
         font: 13px system-ui, sans-serif; }}
figure {{ margin: 0; background: white; box-shadow: 0 2px 8px rgba(0,0,0,.25);
         border-radius: 6px; overflow: hidden; }}
figcaption {{ padding: 6px 12px; background: #eceff1; color: #37474f; }}
img {{ display: block; }}
</style></head><body><div id="sheet">
<figure><figcaption>{left_caption}</figcaption><img src="data:image/png;base64,{left}"></figure>
<figure><figcaption>{right_caption}</figcaption><img src="data:image/png;base64,{right}"></figure>
</div></body></html>
"""


def side_by_side(
    canvas: Page, left: bytes, left_caption: str, right: bytes, right_caption: str, path: Path
) -> Path:
    """Lay two screenshots out next to each other on ``canvas`` and save the result."""
    canvas.set_content(
        SIDE_BY_SIDE.format(
            left=base64.b64encode(left).decode(),
            right=base64.b64encode(right).decode(),
            left_caption=left_caption,
            right_caption=right_caption,
        )
    )
    canvas.locator("#sheet").screenshot(path=path)
    return path


def should_update_readme_screenshot() -> bool:
    return os.environ.get(UPDATE_VARIABLE) == "1" or not README_SCREENSHOT.exists()
