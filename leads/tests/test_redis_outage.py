"""Redis down: the board works and moves save; live updates come back when a real Redis starts again."""

import asyncio
import logging
import shutil
import socket
import subprocess
import time

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.urls import reverse

from leads.models import Activity
from leads.realtime import MANAGERS_GROUP
from leads.tests.factories import stage_named

pytestmark = pytest.mark.django_db
REDIS_SERVER = shutil.which("redis-server")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_layer(settings, port):
    """CHANNEL_LAYERS exactly as settings.py builds it from REDIS_URL (changing it resets the layer)."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "config.channel_layers.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {"address": f"redis://127.0.0.1:{port}", "socket_connect_timeout": 1, "socket_timeout": 2}
                ]
            },
        }
    }


def move(client, lead, stage, callbacks):
    lead.refresh_from_db()
    with callbacks(execute=True):
        return client.post(
            reverse("leads:move", args=[lead.pk]),
            {"stage": stage.pk, "version": lead.version},
            HTTP_ACCEPT="application/json",
        )


def assert_moved(lead, stage, response):
    assert response.status_code == 200, response.content
    assert response.json()["ok"] is True
    lead.refresh_from_db()
    assert lead.stage == stage
    last = lead.activities.filter(kind=Activity.Kind.STAGE_CHANGED).order_by("-id").first()
    assert last.data["to_id"] == stage.pk


def start_redis(port):
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"redis-server did not start on port {port}")


def test_with_redis_down_the_board_works_and_moves_save(
    settings, manager_client, lead, caplog, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    redis_layer(settings, free_port())  # nothing listens there
    with django_assert_max_num_queries(25):
        board = manager_client.get(reverse("leads:board"))
    assert board.status_code == 200
    target = stage_named("In Progress")
    with caplog.at_level(logging.WARNING, logger="leads.realtime"):
        response = move(manager_client, lead, target, django_capture_on_commit_callbacks)
    assert_moved(lead, target, response)
    assert "could not announce lead.moved" in caplog.text


@pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server is not installed (apt-get install redis-server)"
)
def test_live_updates_come_back_when_redis_does(
    settings, manager_client, lead, caplog, django_capture_on_commit_callbacks
):
    port = free_port()
    redis_layer(settings, port)
    first, second = stage_named("In Progress"), stage_named("Won")

    with caplog.at_level(logging.WARNING, logger="leads.realtime"):
        assert_moved(lead, first, move(manager_client, lead, first, django_capture_on_commit_callbacks))
    assert "could not announce lead.moved" in caplog.text

    redis = start_redis(port)  # the same REDIS_URL, now answering
    try:
        layer = get_channel_layer()

        async def listen():
            channel = await layer.new_channel()
            await layer.group_add(MANAGERS_GROUP, channel)
            return channel

        async def receive(channel):
            return await asyncio.wait_for(layer.receive(channel), timeout=5)

        channel = async_to_sync(listen)()
        response = move(manager_client, lead, second, django_capture_on_commit_callbacks)
        event = async_to_sync(receive)(channel)
    finally:
        redis.terminate()
        redis.wait(timeout=10)
    assert_moved(lead, second, response)
    assert event["type"] == "lead.event" and event["event"] == "lead.moved"
    assert (event["lead_id"], event["stage_id"]) == (lead.pk, second.pk)
