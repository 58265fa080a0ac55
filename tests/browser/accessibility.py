"""axe-core in a page: the accessibility problems a screen-reader or keyboard user hits.

axe-core (npm, `make install-test`) is injected into the page under test; the page's
context must be opened with ``bypass_csp=True``, as our pages forbid inline scripts.
"""

from pathlib import Path

from playwright.sync_api import Page

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = ("serious", "critical")


def serious_violations(page: Page, within: str = "") -> list[dict]:
    """axe-core's serious and critical WCAG 2 A/AA violations of ``page`` (or of the
    element ``within`` selects), each with a few of the elements it found."""
    page.add_script_tag(path=AXE)
    found = page.evaluate(
        """async (within) => (await axe.run(within ? document.querySelector(within) : document,
            {runOnly: ["wcag2a", "wcag2aa"], resultTypes: ["violations"]})).violations""",
        within,
    )
    return [
        {
            "id": violation["id"],
            "impact": violation["impact"],
            "help": violation["help"],
            "where": [node["target"] for node in violation["nodes"][:5]],
        }
        for violation in found
        if violation["impact"] in SERIOUS
    ]
