"""Password validators on every door that sets a password: admin add/change, own change, the service."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts import services
from accounts.models import User
from accounts.roles import Role
from leads.tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

WEAK = ["short", "password123", "12345678901234", "salesperson@test.example"]


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize("weak", WEAK)
def test_the_admin_add_user_form_refuses_a_weak_password(admin_client_, weak):
    data = {
        "email": "salesperson@test.example",
        "first_name": "Sam",
        "last_name": "Seller",
        "role": Role.SALES,
        "password1": weak,
        "password2": weak,
    }

    response = admin_client_.post(reverse("admin:accounts_user_add"), data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert not User.objects.filter(email="salesperson@test.example").exists()


def test_the_admin_password_change_form_refuses_a_weak_password(admin_client_, sales):
    url = reverse("admin:auth_user_password_change", args=[sales.pk])
    response = admin_client_.post(url, {"password1": "password", "password2": "password"})

    assert response.status_code == 200
    assert "too common" in response.content.decode()
    sales.refresh_from_db()
    assert sales.check_password(DEFAULT_PASSWORD)


def test_the_own_password_change_page_refuses_a_weak_password(sales_client, sales):
    response = sales_client.post(
        reverse("password_change"),
        {"old_password": DEFAULT_PASSWORD, "new_password1": "12345678", "new_password2": "12345678"},
    )

    assert response.status_code == 200
    sales.refresh_from_db()
    assert sales.check_password(DEFAULT_PASSWORD)


@pytest.mark.parametrize("weak", WEAK)
def test_the_service_refuses_a_weak_password_whoever_calls_it(admin_user, weak):
    with pytest.raises(ValidationError) as refused:
        services.create_user_with_password(
            actor=admin_user,
            email="salesperson@test.example",
            first_name="Sam",
            last_name="Seller",
            role=Role.SALES,
            password=weak,
        )

    assert "password" in refused.value.message_dict
    assert not User.objects.filter(email="salesperson@test.example").exists()


def test_the_service_accepts_a_good_password(admin_user):
    user = services.create_user_with_password(
        actor=admin_user,
        email="salesperson@test.example",
        first_name="Sam",
        last_name="Seller",
        role=Role.SALES,
        password="a-long-demo-passphrase",
    )

    assert user.check_password("a-long-demo-passphrase")
