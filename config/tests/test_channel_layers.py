"""The Redis channel layer keeps an idle live-board socket open past the connection's socket timeout."""

import asyncio
import os
import uuid

import pytest

from config.channel_layers import RedisChannelLayer

REDIS_URL = os.environ.get("SCALE_OUT_REDIS_URL", "redis://127.0.0.1:6379/14")
# As config/settings.py connects: a hung Redis may cost 2 s at most.
HOST = {"address": REDIS_URL, "socket_connect_timeout": 1, "socket_timeout": 2}


@pytest.fixture
def redis_url():
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"needs a Redis server at {REDIS_URL} (set SCALE_OUT_REDIS_URL): {exc}")
    return REDIS_URL


def test_the_blocking_read_is_shorter_than_the_socket_timeout():
    assert RedisChannelLayer.brpop_timeout < HOST["socket_timeout"]


def test_a_receive_waits_quietly_past_the_socket_timeout_then_gets_its_message(redis_url):
    layer = RedisChannelLayer(hosts=[HOST], prefix=f"test-{uuid.uuid4().hex[:12]}")

    async def idle_then_message():
        try:
            channel = await layer.new_channel()
            receiving = asyncio.ensure_future(layer.receive(channel))
            # channels_redis's own 5 s BRPOP failed here after 2 s with redis.TimeoutError.
            await asyncio.sleep(HOST["socket_timeout"] + 1.5)
            assert not receiving.done(), receiving.exception()
            await layer.send(channel, {"type": "lead.event", "lead_id": 7})
            return await asyncio.wait_for(receiving, timeout=5)
        finally:
            await layer.flush()
            await layer.close_pools()

    assert asyncio.run(idle_then_message()) == {"type": "lead.event", "lead_id": 7}
