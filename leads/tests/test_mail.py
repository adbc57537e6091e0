"""E-mail: the outbox (queue_email), delivery with retries, send_pending_emails, and who is told what."""

import logging
import threading
from datetime import timedelta
from functools import partial
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.roles import Role
from leads.events import announce
from leads.mail import absolute_url, queue_email
from leads.models import Activity, OutgoingEmail
from leads.tasks import deliver_email, deliver_one
from leads.tests.concurrency import run_at_once
from leads.tests.factories import LeadFactory, UserFactory

pytestmark = pytest.mark.django_db

SITE = "https://crm.example.com"
LOCMEM = "django.core.mail.backends.locmem.EmailBackend"


class FailingBackend(BaseEmailBackend):
    """A mail server that refuses every message."""

    def send_messages(self, email_messages):
        raise ConnectionRefusedError("mail server unreachable")


class SlowLocmemBackend(LocmemBackend):
    """Locmem that takes a moment per message, so two senders really overlap."""

    def send_messages(self, messages):
        threading.Event().wait(0.2)
        return super().send_messages(messages)


@pytest.fixture(autouse=True)
def _mail_settings(settings):
    settings.SITE_URL = SITE
    settings.EMAIL_MAX_ATTEMPTS = 3
    settings.EMAIL_RETRY_BASE_SECONDS = 60
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}


def html_part(message):
    (html, mimetype), *_ = message.alternatives
    assert mimetype == "text/html"
    return html


def sent_to(address):
    return [message for message in mail.outbox if message.to == [address]]


def later(minutes):
    """Pretend the delivery code runs `minutes` from now."""
    moment = timezone.now() + timedelta(minutes=minutes)
    return SimpleNamespace(now=lambda: moment)


def send_pending():
    out = StringIO()
    call_command("send_pending_emails", stdout=out)
    return out.getvalue()


def queue_assigned(lead, user, key="test:1"):
    return queue_email(
        key=key,
        to=user.email,
        template="lead_assigned",
        context={"lead": lead, "recipient": user, "details": [], "lead_url": absolute_url("/x/")},
        lead=lead,
    )


# --- queue_email -----------------------------------------------------------------------------


def test_absolute_url_uses_site_url():
    assert absolute_url("/leads/3/") == f"{SITE}/leads/3/"
    assert absolute_url("leads/3/") == f"{SITE}/leads/3/"
    assert absolute_url("https://other.example/x") == "https://other.example/x"


def test_queue_email_writes_one_row_and_sends_it_after_commit(
    lead, sales, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        email = queue_assigned(lead, sales)
        assert mail.outbox == []  # nothing leaves before the transaction commits
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [sales.email]
    assert message.subject == f"A lead was assigned to you: {lead.name}"
    assert "<html" in html_part(message) and lead.name in html_part(message)
    email.refresh_from_db()
    assert (email.status, email.attempts, email.lead) == (OutgoingEmail.Status.SENT, 1, lead)
    assert email.sent_at is not None


def test_the_same_key_twice_sends_once(lead, sales, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = queue_assigned(lead, sales, key="same")
        second = queue_assigned(lead, sales, key="same")
    assert first is not None and second is None
    assert OutgoingEmail.objects.filter(key="same").count() == 1
    assert len(mail.outbox) == 1


def test_an_empty_address_is_skipped(lead, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert queue_email(key="nobody", to="  ", template="lead_assigned", context={"lead": lead}) is None
    assert not OutgoingEmail.objects.exists() and mail.outbox == []


def test_a_queue_that_cannot_be_reached_leaves_the_row_for_the_command(
    lead, sales, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    def broken_enqueue(self, *args, **kwargs):
        raise RuntimeError("queue down")

    monkeypatch.setattr(type(deliver_email), "enqueue", broken_enqueue)
    with django_capture_on_commit_callbacks(execute=True):
        email = queue_assigned(lead, sales)
    assert mail.outbox == [] and "Could not enqueue" in caplog.text
    monkeypatch.undo()
    assert "Sent 1" in send_pending()
    email.refresh_from_db()
    assert email.status == OutgoingEmail.Status.SENT


# --- which event sends what ------------------------------------------------------------------


def test_a_captured_lead_thanks_the_prospect_and_tells_the_owner(
    lead, sales, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        announce("lead.captured", lead=lead, actor=None)
    assert len(mail.outbox) == 2
    (prospect,) = sent_to(lead.email)
    assert prospect.subject == f"We received your request, {lead.first_name}"
    assert "We received your application" in prospect.body
    assert "We received your application" in html_part(prospect)
    # Nothing internal goes to the prospect: no link into the app.
    assert SITE not in prospect.body and SITE not in html_part(prospect)

    (owner,) = sent_to(sales.email)
    link = f"{SITE}/leads/{lead.pk}/"
    assert owner.subject == f"New lead from the website: {lead.name}"
    assert link in owner.body and f'href="{link}"' in html_part(owner)
    assert lead.email in owner.body and lead.company in html_part(owner)


def test_an_unassigned_capture_goes_to_every_active_manager_and_admin(
    admin_user, manager, sales, django_capture_on_commit_callbacks
):
    UserFactory(role=Role.MANAGER, email="gone@test.example", is_active=False)
    pool = LeadFactory(owner=None, email="", phone="+15550100")
    with django_capture_on_commit_callbacks(execute=True):
        announce("lead.captured", lead=pool, actor=None)
    assert sorted(message.to[0] for message in mail.outbox) == [admin_user.email, manager.email]
    assert all("nobody owns it yet" in message.body for message in mail.outbox)


def test_a_capture_announced_twice_sends_each_message_once(lead, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        announce("lead.captured", lead=lead, actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        announce("lead.captured", lead=lead, actor=None)
    assert len(mail.outbox) == 2
    assert OutgoingEmail.objects.count() == 2


def test_a_second_submission_tells_the_owner_what_was_sent(lead, sales, django_capture_on_commit_callbacks):
    activity = Activity.objects.create(
        lead=lead,
        kind=Activity.Kind.SUBMITTED_AGAIN,
        body="Could you call me after 5pm?",
        data={"submitted": {"company": "Globex", "phone": "+15550100"}},
    )
    with django_capture_on_commit_callbacks(execute=True):
        announce("lead.resubmitted", lead=lead, actor=None, activity_id=activity.pk)
        announce("lead.resubmitted", lead=lead, actor=None, activity_id=activity.pk)
    (message,) = mail.outbox
    assert message.to == [sales.email]
    assert message.subject == f"{lead.name} submitted the form again"
    for text in (message.body, html_part(message)):
        assert "Globex" in text and "+15550100" in text and "after 5pm" in text
        assert f"{SITE}/leads/{lead.pk}/" in text


def test_a_second_submission_on_an_unassigned_lead_goes_to_the_managers(
    manager, django_capture_on_commit_callbacks
):
    pool = LeadFactory(owner=None)
    activity = Activity.objects.create(lead=pool, kind=Activity.Kind.SUBMITTED_AGAIN, data={"message": "Hi"})
    with django_capture_on_commit_callbacks(execute=True):
        announce("lead.resubmitted", lead=pool, actor=None, activity_id=activity.pk)
    assert [message.to for message in mail.outbox] == [[manager.email]]


def test_the_public_form_end_to_end_thanks_the_prospect_then_reports_the_second_submission(
    manager, django_capture_on_commit_callbacks
):
    from leads.intake import capture_lead

    form = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@prospect.example",
        "phone": "",
        "company": "Analytical Engines",
        "consent": True,
    }
    with django_capture_on_commit_callbacks(execute=True):
        lead = capture_lead(**form, message="Please call me.").lead
    (prospect,) = sent_to("ada@prospect.example")
    assert prospect.subject == "We received your request, Ada"
    (team,) = sent_to(manager.email)
    assert team.subject == "New lead from the website: Ada Lovelace"
    assert "Please call me." in team.body and f"{SITE}/leads/{lead.pk}/" in team.body

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        capture_lead(**{**form, "company": "Babbage & Co"}, message="New company!")
    (again,) = mail.outbox
    assert again.to == [manager.email] and again.subject == "Ada Lovelace submitted the form again"
    assert (
        "Babbage &amp; Co" in html_part(again)
        and "Babbage & Co" in again.body
        and "New company!" in again.body
    )


def test_reassigning_on_the_lead_page_tells_the_new_owner(
    manager_client, manager, lead, other_sales, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(
            reverse("leads:reassign", args=[lead.pk]), {"owner": other_sales.pk, "version": lead.version}
        )
    assert response.status_code == 302
    (message,) = mail.outbox
    assert message.to == [other_sales.email]
    assert message.subject == f"A lead was assigned to you: {lead.name}"
    assert f"{manager} assigned a lead to you" in message.body
    assert f'href="{SITE}/leads/{lead.pk}/"' in html_part(message)


def test_each_reassignment_sends_its_own_message_and_a_redelivery_none(
    manager, lead, sales, other_sales, django_capture_on_commit_callbacks
):
    from leads import services

    for owner in (other_sales, sales, other_sales):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            lead = services.reassign_lead(lead=lead, owner=owner, actor=manager)
        for callback in callbacks:  # the event delivered a second time
            callback()
    assert [message.to[0] for message in mail.outbox] == [other_sales.email, sales.email, other_sales.email]


def test_nobody_is_told_about_a_claim_or_an_unassignment(
    manager, sales, lead, django_capture_on_commit_callbacks
):
    from leads import services

    pool = LeadFactory(owner=None)
    with django_capture_on_commit_callbacks(execute=True):
        services.claim_lead(lead=pool, actor=sales)
        services.reassign_lead(lead=lead, owner=None, actor=manager)
    assert mail.outbox == []


def test_reassigning_to_an_inactive_user_sends_nothing(manager, lead, django_capture_on_commit_callbacks):
    from leads import services

    leaver = UserFactory(is_active=True)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.reassign_lead(lead=lead, owner=leaver, actor=manager)
    leaver.is_active = False
    leaver.save()
    for callback in callbacks:
        callback()
    assert mail.outbox == []


def test_a_receiver_that_breaks_never_reaches_the_request(
    manager_client, lead, other_sales, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    def broken(**kwargs):
        raise RuntimeError("template missing")

    monkeypatch.setattr("leads.emails.queue_email", broken)
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(
            reverse("leads:reassign", args=[lead.pk]), {"owner": other_sales.pk, "version": lead.version}
        )
    assert response.status_code == 302
    assert "were not queued" in caplog.text


# --- failures and retries --------------------------------------------------------------------


def test_a_failing_mail_server_does_not_fail_the_request_and_the_message_is_retried(
    settings, manager_client, lead, other_sales, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    settings.EMAIL_BACKEND = "leads.tests.test_mail.FailingBackend"
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.patch(
            f"/api/leads/{lead.pk}/owner", {"owner": other_sales.pk}, content_type="application/json"
        )
    assert response.status_code == 200, response.content
    email = OutgoingEmail.objects.get()
    assert (email.status, email.attempts) == (OutgoingEmail.Status.PENDING, 1)
    assert "mail server unreachable" in email.last_error
    # The first retry waits EMAIL_RETRY_BASE_SECONDS; then 4 times as long, and so on.
    assert timedelta(seconds=59) < email.next_attempt_at - timezone.now() <= timedelta(seconds=60)
    assert "retrying at" in caplog.text

    settings.EMAIL_BACKEND = LOCMEM
    assert "Sent 0" in send_pending()  # not due yet
    monkeypatch.setattr("leads.tasks.timezone", later(minutes=2))
    assert "Sent 1" in send_pending()
    assert "Sent 0" in send_pending()
    assert [message.to for message in mail.outbox] == [[other_sales.email]]
    email.refresh_from_db()
    assert (email.status, email.attempts, email.last_error) == (OutgoingEmail.Status.SENT, 2, "")


def test_after_the_last_attempt_the_message_is_failed_and_logged(
    settings, lead, sales, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "leads.tests.test_mail.FailingBackend"
    with django_capture_on_commit_callbacks(execute=True):
        email = queue_assigned(lead, sales)
    # Attempt 1 failed at once (retry after 1 minute); attempt 2 two minutes later (retry after 4).
    second_try = later(minutes=2)
    monkeypatch.setattr("leads.tasks.timezone", second_try)
    send_pending()
    email.refresh_from_db()
    assert (email.status, email.attempts) == (OutgoingEmail.Status.PENDING, 2)
    assert email.next_attempt_at - second_try.now() == timedelta(minutes=4)
    monkeypatch.setattr("leads.tasks.timezone", later(minutes=7))
    send_pending()
    email.refresh_from_db()
    assert (email.status, email.attempts) == (OutgoingEmail.Status.FAILED, 3)
    assert any(
        record.levelno == logging.ERROR and "failed for good after 3 attempts" in record.getMessage()
        for record in caplog.records
    )
    settings.EMAIL_BACKEND = LOCMEM
    monkeypatch.setattr("leads.tasks.timezone", later(minutes=600))
    assert "Sent 0" in send_pending()
    assert mail.outbox == []


def test_a_message_left_sending_by_a_dead_worker_is_sent_after_ten_minutes(lead, monkeypatch):
    email = OutgoingEmail.objects.create(
        key="stuck", to="x@test.example", subject="Hi", body_text="Hi", status=OutgoingEmail.Status.SENDING
    )
    monkeypatch.setattr("leads.tasks.timezone", later(minutes=5))
    assert "Sent 0" in send_pending()
    monkeypatch.setattr("leads.tasks.timezone", later(minutes=11))
    assert "Sent 1" in send_pending()
    email.refresh_from_db()
    assert email.status == OutgoingEmail.Status.SENT and len(mail.outbox) == 1


def test_a_backend_that_can_defer_gets_the_retry_with_run_after(
    settings, lead, sales, django_capture_on_commit_callbacks
):
    from django_tasks import default_task_backend

    settings.EMAIL_BACKEND = "leads.tests.test_mail.FailingBackend"
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    with django_capture_on_commit_callbacks(execute=True):
        email = queue_assigned(lead, sales)
    (first,) = default_task_backend.results
    assert first.args == [email.pk] and first.task.run_after is None
    deliver_email.call(email.pk)
    email.refresh_from_db()
    retry = default_task_backend.results[-1]
    assert retry.task.run_after == email.next_attempt_at and email.status == OutgoingEmail.Status.PENDING


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_workers_delivering_one_message_send_it_once(settings, lead):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises every write; the race needs PostgreSQL")
    settings.EMAIL_BACKEND = "leads.tests.test_mail.SlowLocmemBackend"
    email = OutgoingEmail.objects.create(key="race", to="x@test.example", subject="Hi", body_text="Hi")
    outcomes = run_at_once(partial(deliver_one, email.pk), partial(deliver_one, email.pk))
    assert sorted(outcomes) == ["sent", "skipped"]
    assert len(mail.outbox) == 1


# --- admin -----------------------------------------------------------------------------------

CHANGELIST = reverse("admin:leads_outgoingemail_changelist")


def test_managers_see_the_outbox_and_sales_do_not(
    manager_client, client, sales, django_assert_max_num_queries
):
    for n in range(3):
        OutgoingEmail.objects.create(
            key=f"k{n}", to=f"p{n}@test.example", subject=f"Subject {n}", body_text="x", last_error="Boom"
        )
    with django_assert_max_num_queries(8):
        page = manager_client.get(CHANGELIST)
    assert page.status_code == 200
    assert "Subject 2" in page.content.decode() and "Boom" in page.content.decode()
    assert manager_client.get(CHANGELIST + "?status__exact=sent").context["cl"].result_count == 0
    assert manager_client.get(reverse("admin:leads_outgoingemail_add")).status_code == 403

    client.force_login(sales)
    assert client.get(CHANGELIST).status_code == 302  # sales are not staff: back to the admin login


def test_retry_now_sends_a_failed_message_again(manager_client, django_capture_on_commit_callbacks):
    failed = OutgoingEmail.objects.create(
        key="f",
        to="p@test.example",
        subject="S",
        body_text="x",
        status="failed",
        attempts=3,
        last_error="Boom",
    )
    sent = OutgoingEmail.objects.create(
        key="s", to="q@test.example", subject="S", body_text="x", status="sent"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(
            CHANGELIST, {"action": "retry_now", "_selected_action": [failed.pk, sent.pk]}, follow=True
        )
    assert response.status_code == 200
    assert "Retrying 1 e-mail now." in response.content.decode()
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (OutgoingEmail.Status.SENT, 1)
    assert [message.to for message in mail.outbox] == [["p@test.example"]]
