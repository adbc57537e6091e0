"""Settings for the scale-out test's subprocesses: production settings, a channel prefix of the test's own."""

import os

from config.settings import *  # noqa: F403

# Concurrent test runs share one Redis: a prefix per run keeps their groups ("managers", "user.1") apart.
if REDIS_URL:  # noqa: F405
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = os.environ["SCALE_OUT_CHANNEL_PREFIX"]  # noqa: F405
