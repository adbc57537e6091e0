"""The ASGI entry point: HTTP to Django, WebSockets at /ws/board/ to the live board."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Django must be set up (apps loaded) before anything imports models: the consumer does.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from config.body_limit import RequestBodyLimit  # noqa: E402
from leads.realtime import BoardConsumer  # noqa: E402

# The session cookie authenticates the socket, so a page on another site must not open one
# in the user's name: the Origin header has to name one of ALLOWED_HOSTS.
websocket_application = AllowedHostsOriginValidator(
    AuthMiddlewareStack(URLRouter([path("ws/board/", BoardConsumer.as_asgi())]))
)

application = ProtocolTypeRouter(
    {"http": RequestBodyLimit(django_asgi_app), "websocket": websocket_application}
)
