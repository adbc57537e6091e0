"""The ASGI guard answers 413 to oversized bodies before the app (and Django's spooling) sees them."""

from asgiref.sync import async_to_sync

from config.body_limit import ALLOWANCE_BYTES, RequestBodyLimit


class EchoApp:
    """Reads the body like Django's handler does, then answers 200 with how much it read."""

    def __init__(self):
        self.called = False

    async def __call__(self, scope, receive, send):
        self.called = True
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # Django gives up on the request here, answering nothing
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


def call(path, chunks, *, content_length=None):
    app = EchoApp()
    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    scope = {"type": "http", "path": path, "method": "POST", "headers": headers}
    pending = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent = []

    async def receive():
        return pending.pop(0)

    async def send(message):
        sent.append(message)

    async_to_sync(RequestBodyLimit(app))(scope, receive, send)
    return app, sent


def test_a_declared_length_over_the_limit_is_refused_before_the_app_runs(settings):
    settings.ATTACHMENT_MAX_BYTES = 1000
    app, sent = call("/apply/", [b"x"], content_length=1000 + ALLOWANCE_BYTES + 1)
    assert not app.called
    assert sent[0]["status"] == 413
    assert b"too large" in sent[1]["body"]


def test_a_body_that_streams_past_the_limit_without_a_length_is_refused(settings):
    settings.ATTACHMENT_MAX_BYTES = 1000
    chunk = b"x" * (ALLOWANCE_BYTES // 2)
    app, sent = call("/api/public/leads/", [chunk, chunk, chunk, chunk])
    assert app.called
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [413]


def test_a_body_within_the_limit_reaches_the_app(settings):
    settings.ATTACHMENT_MAX_BYTES = 1000
    app, sent = call("/apply/", [b"a" * 500, b"b" * 500], content_length=1000)
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"1000"


def test_imports_may_send_far_more_than_other_pages(settings):
    settings.ATTACHMENT_MAX_BYTES = 1000
    settings.IMPORT_MAX_BYTES = 50 * ALLOWANCE_BYTES
    _, sent = call("/imports/", [b"x"], content_length=10 * ALLOWANCE_BYTES)
    assert sent[0]["status"] == 200
    _, sent = call("/leads/1/files/", [b"x"], content_length=10 * ALLOWANCE_BYTES)
    assert sent[0]["status"] == 413
