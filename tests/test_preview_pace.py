"""Each preview's pace at the gateway (``preview/pace.py``): a page load passes at once,
a flood of one preview waits its turn and is refused only when the turn is too far off,
and another preview is not held up by it. Through a real gateway to real apps."""

import asyncio
import time

import aiohttp
from aiohttp import web

from codepilot_spawner.services.preview.hosts import preview_label
from codepilot_spawner.services.preview.pace import PreviewPace
from codepilot_spawner.services.preview.servers import PreviewTarget
from codepilot_spawner.spawners.previewroute import PreviewRoute

from .support.loopback import start_on_loopback
from .support.previewreplica import gateway_replica, serving

# --- the bucket ------------------------------------------------------------------------


def test_a_burst_passes_at_once_and_the_rest_wait_in_order():
    pace = PreviewPace(rate=100, burst=5)
    waits = [pace.reserve("ana") for _ in range(8)]
    assert waits[:5] == [0.0] * 5
    # Each one past the burst waits a token's time (10 ms) longer than the one before.
    assert [round(wait, 3) for wait in waits[5:]] == [0.01, 0.02, 0.03]
    assert pace.reserve("bob") == 0.0  # a bucket per preview


def test_a_turn_too_far_off_is_refused_and_takes_nothing():
    pace = PreviewPace(rate=10, burst=1, max_wait=0.5)
    waits = [pace.reserve("ana") for _ in range(7)]
    assert [round(wait, 2) for wait in waits[:6]] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert waits[6] is None
    assert pace.reserve("ana") is None  # still too far: the refusal took no token
    pace.give_back("ana")  # a waiter who left returns its token
    assert pace.reserve("ana") is not None


def test_rate_zero_never_waits_and_the_buckets_stay_bounded():
    unpaced = PreviewPace(rate=0, burst=0)
    assert {unpaced.reserve("ana") for _ in range(10_000)} == {0.0}
    pace = PreviewPace(rate=1, burst=1, size=3)
    for name in ("a", "b", "c", "d"):
        pace.reserve(name)
    assert len(pace._buckets) == 3
    assert pace.reserve("a") == 0.0  # forgotten, so full again


# --- through a real gateway --------------------------------------------------------------


async def start_app(text: bytes):
    """An aiohttp app on loopback answering ``text``; (runner, port, requests seen)."""
    seen = []

    async def page(request):
        seen.append(time.monotonic())
        return web.Response(body=text)

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app)
    return runner, await start_on_loopback(runner), seen


async def test_a_flood_of_one_preview_is_paced_and_another_preview_is_not():
    ana_runner, ana_port, ana_seen = await start_app(b"ANA")
    bob_runner, bob_port, bob_seen = await start_app(b"BOB")
    targets = [
        PreviewTarget(user, "", preview_label(user), PreviewRoute("1", port))
        for user, port in (("ana", ana_port), ("bob", bob_port))
    ]
    rate, burst = 50, 10
    gateway = gateway_replica(b"k" * 32, targets, pace=PreviewPace(rate, burst, max_wait=1))
    for target in targets:
        await gateway.shares.set_level(target, "public")
    host = {user: {"Host": f"{preview_label(user)}.preview.localhost"} for user in ("ana", "bob")}

    async def fetch(viewer, url, user):
        async with viewer.get(url, headers=host[user]) as answer:
            return answer.status, answer.headers.get("Retry-After"), await answer.read()

    try:
        async with (
            serving(gateway) as url,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as viewer,
        ):
            started = time.monotonic()
            flood = asyncio.gather(*(fetch(viewer, url, "ana") for _ in range(100)))
            await asyncio.sleep(0.1)
            bob_answer = await fetch(viewer, url, "bob")
            answers = await flood
    finally:
        await ana_runner.cleanup()
        await bob_runner.cleanup()
    # Bob's preview answered while ana's requests still waited their turn.
    assert bob_answer == (200, None, b"BOB")
    assert bob_seen[0] < ana_seen[-1]
    passed = [answer for answer in answers if answer[0] == 200]
    refused = [answer for answer in answers if answer[0] == 429]
    assert len(passed) + len(refused) == 100
    # The burst, and a second's worth at the pace, are let through however slowly the
    # flood arrives; the rest are told when to come back.
    assert len(passed) >= burst + rate * 1 - 1, len(passed)
    assert refused and {retry for _, retry, _ in refused} == {"1"}
    assert b"Too many requests to this preview" in refused[0][2]
    # The app never got more than the burst plus the pace since the flood began
    # (a delay anywhere only makes it fewer).
    assert len(ana_seen) == len(passed)
    for number, seen_at in enumerate(ana_seen, 1):
        assert number <= burst + rate * (seen_at - started) + 1, (number, seen_at - started)
