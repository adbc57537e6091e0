"""Fixtures for the whole suite: fast hashing, locmem e-mail, a scratch media folder, users per role."""

import pytest

from accounts.roles import Role
from leads.tests.factories import LeadFactory, UserFactory


def pytest_collection_modifyitems(items):
    # A transactional test without serialized_rollback flushes the database and lets post_migrate
    # recreate the role groups with new ids; the next serialized_rollback test then fails to
    # restore them (UNIQUE auth_group.name). So every transactional test restores what it wiped.
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker and marker.kwargs.get("transaction") and not marker.kwargs.get("serialized_rollback"):
            raise pytest.UsageError(
                f"{item.nodeid}: use @pytest.mark.django_db(transaction=True, serialized_rollback=True)"
            )


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.LEAD_SHARING = "read"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def admin_user(db):
    return UserFactory(role=Role.ADMIN, email="admin@test.example")


@pytest.fixture
def manager(db):
    return UserFactory(role=Role.MANAGER, email="manager@test.example")


@pytest.fixture
def sales(db):
    return UserFactory(role=Role.SALES, email="sales@test.example")


@pytest.fixture
def other_sales(db):
    return UserFactory(role=Role.SALES, email="other@test.example")


@pytest.fixture
def lead(sales):
    """A lead owned by `sales`."""
    return LeadFactory(owner=sales)


@pytest.fixture
def sales_client(client, sales):
    client.force_login(sales)
    return client


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    return client
