"""Fixtures for the API tests: a fresh throttle cache per test and API clients per role."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from leads.tests.api.contract import client_for


@pytest.fixture(autouse=True)
def _fresh_throttle_cache():
    # Throttle counters live in the cache and user ids repeat between tests: start each at zero.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api():
    """An anonymous APIClient."""
    return APIClient()


@pytest.fixture
def as_sales(sales):
    return client_for(sales)


@pytest.fixture
def as_other_sales(other_sales):
    return client_for(other_sales)


@pytest.fixture
def as_manager(manager):
    return client_for(manager)


@pytest.fixture
def as_admin(admin_user):
    return client_for(admin_user)
