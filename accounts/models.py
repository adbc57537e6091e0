"""The custom user: e-mail is the login, and the role decides staff status and admin groups."""

from django.contrib.auth.models import AbstractUser, Group
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.db import models
from django.utils.crypto import salted_hmac

from accounts.identity import canonical_email
from accounts.roles import MANAGING_ROLES, ROLE_GROUPS, Role


class UserManager(DjangoUserManager):
    use_in_migrations = True

    def _create_user(self, email, password, **extra_fields):
        if not email:
            raise ValueError("An e-mail address is required")
        user = self.model(email=canonical_email(email), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra_fields):
        extra_fields.setdefault("role", Role.SALES)
        return self._create_user(email, password, **extra_fields)

    def get_by_natural_key(self, username):
        # Every login door (the login page, JWT, admin, password change) ends here. E-mails are
        # stored canonical (User.save), so an exact match on the canonical form finds any ASCII
        # case people type, and exactly the account django-axes counts the attempt against; a
        # database iexact would not (see accounts.identity).
        return self.get(email=canonical_email(username if isinstance(username, str) else ""))

    def create_superuser(self, email, password=None, **extra_fields):
        extra_fields["role"] = Role.ADMIN
        return self._create_user(email, password, **extra_fields)


class User(AbstractUser):
    username = None
    email = models.EmailField("e-mail address", unique=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.SALES)
    # "Log out everywhere" bumps this; it is part of the session auth hash, so every session
    # (pages, admin, the live board's socket) made before ends at its next request.
    session_epoch = models.PositiveIntegerField(default=0, editable=False)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = ["first_name", "last_name"]

    objects = UserManager()

    class Meta:
        ordering = ["first_name", "last_name", "email"]

    def __str__(self):
        return self.get_full_name() or self.email

    @property
    def is_manager(self):
        """Managers and admins run the team: every lead, reassignments, Django admin."""
        return self.is_active and self.role in MANAGING_ROLES

    def _get_session_auth_hash(self, secret=None):
        # Django's hash of the password, plus the epoch once it moved: epoch 0 gives Django's own
        # value, so sessions made before this field existed stay valid.
        key_salt = "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash"
        value = self.password if not self.session_epoch else f"{self.password}:{self.session_epoch}"
        return salted_hmac(key_salt, value, secret=secret, algorithm="sha256").hexdigest()

    def save(self, *args, **kwargs):
        # The role is the source of truth; staff and superuser flags follow it.
        # The canonical form (accounts.identity) whatever the door: admin, invites, createsuperuser.
        self.email = canonical_email(self.email)
        self.is_staff = self.role in MANAGING_ROLES
        self.is_superuser = self.role == Role.ADMIN
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "role" in update_fields:
            # save(update_fields=["role"]) must still store the flags that follow the role.
            kwargs["update_fields"] = {*update_fields, "is_staff", "is_superuser"}
        super().save(*args, **kwargs)
        self._sync_role_groups()

    def _sync_role_groups(self):
        wanted = ROLE_GROUPS.get(self.role)
        role_groups = Group.objects.filter(name__in=ROLE_GROUPS.values())
        self.groups.remove(*[g for g in role_groups if g.name != wanted])
        if wanted:
            group, _ = Group.objects.get_or_create(name=wanted)
            self.groups.add(group)
