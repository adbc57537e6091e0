"""An ASGI guard that refuses oversized request bodies before Django spools them to disk."""

from django.conf import settings

# Room for form fields and multipart framing on top of the largest file a request may carry.
ALLOWANCE_BYTES = 1024 * 1024
IMPORT_PATHS = ("/imports/", "/api/imports/")


def body_limit(path):
    """The largest body a request to `path` may send: CSV imports are big, everything else is not."""
    if path.startswith(IMPORT_PATHS):
        return settings.IMPORT_MAX_BYTES + ALLOWANCE_BYTES
    return settings.ATTACHMENT_MAX_BYTES + ALLOWANCE_BYTES


class RequestBodyLimit:
    """Answer 413 to a body over body_limit(path), by its Content-Length or as it streams in.

    Django's ASGI handler reads the whole body into a temporary file before any view runs, so a
    view's own size check (the capture form has one) comes too late to protect the disk.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = body_limit(scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await self._refuse(send, limit)

        received = 0
        too_large = False
        started = False

        async def counting_receive():
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Django stops reading at a disconnect and answers nothing; we answer below.
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counting_receive, tracking_send)
        if too_large and not started:
            await self._refuse(send, limit)

    async def _refuse(self, send, limit):
        megabytes = limit // (1024 * 1024)
        body = f"Request body too large: at most {megabytes} MB may be sent here.\n".encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})
