"""Login, logout, password change, the invitation's set-password page and the users page."""

from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views
from accounts.login_forms import LoginForm
from accounts.password_forms import LockoutCountedPasswordChangeView

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True, authentication_form=LoginForm),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("logout-everywhere/", views.logout_everywhere, name="logout_everywhere"),
    # Wrong current passwords count towards the lockout like failed logins (accounts.password_forms).
    path("password/", LockoutCountedPasswordChangeView.as_view(), name="password_change"),
    path("password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("invite/<uidb64>/<token>/", views.InviteAcceptView.as_view(), name="invite_accept"),
    path("users/", views.users, name="users"),
    path("users/<int:pk>/resend-invite/", views.resend_invite, name="user_resend_invite"),
    path("users/<int:pk>/deactivate/", views.deactivate, name="user_deactivate"),
    path("users/<int:pk>/reactivate/", views.reactivate, name="user_reactivate"),
    path("users/<int:pk>/reassign-leads/", views.reassign_leads, name="user_reassign_leads"),
]
