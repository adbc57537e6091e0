"""The live board's Redis channel layer: channels_redis with a blocking read that fits our socket timeout."""

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer


class RedisChannelLayer(BaseRedisChannelLayer):
    """channels_redis's layer, waiting for a socket's next message one second at a time.

    channels_redis waits with BRPOP for `brpop_timeout` (5 s) at a time. Our connections have a
    2 s socket_timeout (settings: a hung Redis must never hang a request), so every idle wait
    ended in redis.TimeoutError after 2 s, which killed the consumer and dropped the board's
    socket: with Redis, no live board stayed connected for more than 2 quiet seconds. A 1 s
    BRPOP keeps both: idle sockets stay open and a hung Redis still costs at most 2 s.
    """

    brpop_timeout = 1
