"""A real SMTP server that refuses (554, 421): requests succeed, the outbox retries, then delivers once."""

import socket
import socketserver
import threading
from datetime import timedelta

import environ
import pytest
from django.urls import reverse
from django.utils import timezone

from leads.models import OutgoingEmail
from leads.tests.test_mail import later, send_pending

pytestmark = pytest.mark.django_db

OUTBOX_LIST = reverse("admin:leads_outgoingemail_changelist")


class SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for Django's backend: refuses or accepts as `server.mode` says."""

    timeout = 5

    def reply(self, line):
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self):
        server = self.server
        if server.mode == "busy":
            self.reply("421 4.3.2 Service not available, closing transmission channel")
            return
        self.reply("220 test.example ESMTP")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            command = line.decode("ascii", "replace").strip().upper()
            if command.startswith(("EHLO", "HELO")):
                self.reply("250 test.example")
            elif command.startswith(("MAIL FROM", "RCPT TO", "RSET", "NOOP")):
                self.reply("250 2.1.0 Ok")
            elif command == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                data = []
                for raw in iter(self.rfile.readline, b""):
                    if raw in (b".\r\n", b".\n"):
                        break
                    data.append(raw)
                if server.mode == "refuse":
                    self.reply("554 5.7.1 Message rejected: relay denied")
                else:
                    server.received.append(b"".join(data))
                    self.reply("250 2.0.0 Ok: queued")
            elif command == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 Command not recognized")


class SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), SMTPHandler)
        self.mode = "accept"
        self.received = []


@pytest.fixture
def smtp_server(settings):
    """A local SMTP server in a thread, with EMAIL_URL pointing at it (parsed as settings.py does)."""
    server = SMTPServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address
    for name, value in environ.Env.email_url_config(f"smtp://{host}:{port}").items():
        setattr(settings, name, value)
    settings.EMAIL_TIMEOUT = 5
    settings.EMAIL_MAX_ATTEMPTS = 3
    settings.EMAIL_RETRY_BASE_SECONDS = 60
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_the_server_is_real_smtp(smtp_server):
    with socket.create_connection(smtp_server.server_address, timeout=5) as conn:
        assert conn.recv(100).startswith(b"220 ")


@pytest.mark.parametrize(
    ("mode", "error"),
    [("refuse", "554"), ("busy", "421")],
    ids=["554-message-rejected", "421-service-not-available"],
)
def test_a_refusing_mail_server_never_fails_the_request_and_the_message_is_delivered_once_later(
    smtp_server,
    mode,
    error,
    manager_client,
    lead,
    other_sales,
    monkeypatch,
    django_capture_on_commit_callbacks,
    django_assert_max_num_queries,
):
    smtp_server.mode = mode
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.patch(
            f"/api/leads/{lead.pk}/owner", {"owner": other_sales.pk}, content_type="application/json"
        )
    assert response.status_code == 200, response.content
    lead.refresh_from_db()
    assert lead.owner == other_sales

    email = OutgoingEmail.objects.get()
    assert (email.status, email.attempts, email.to) == (OutgoingEmail.Status.PENDING, 1, other_sales.email)
    assert error in email.last_error
    assert timedelta(seconds=59) < email.next_attempt_at - timezone.now() <= timedelta(seconds=60)
    assert smtp_server.received == []

    # Managers see the failure and the next attempt in the admin outbox.
    with django_assert_max_num_queries(8):
        page = manager_client.get(OUTBOX_LIST)
    assert page.status_code == 200 and error in page.content.decode()

    # Still refusing when the retry comes due: attempt 2, a longer wait.
    monkeypatch.setattr("leads.tasks.timezone", later(minutes=2))
    assert "to retry later 1" in send_pending()
    email.refresh_from_db()
    assert (email.status, email.attempts) == (OutgoingEmail.Status.PENDING, 2)

    smtp_server.mode = "accept"
    assert "Sent 0" in send_pending()  # not due yet: nothing is sent early
    monkeypatch.setattr("leads.tasks.timezone", later(minutes=7))
    assert "Sent 1" in send_pending()
    assert "Sent 0" in send_pending()
    assert len(smtp_server.received) == 1
    assert f"To: {other_sales.email}".encode() in smtp_server.received[0]
    email.refresh_from_db()
    assert (email.status, email.attempts, email.last_error) == (OutgoingEmail.Status.SENT, 3, "")
