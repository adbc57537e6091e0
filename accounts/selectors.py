"""Reads for the users page: the team with what each person owns, in one query."""

from django.contrib.auth import get_user_model
from django.db.models import Count, Q


def team_with_live_lead_counts():
    """Every user with `live_leads`: how many live (not deleted) leads they own. Active people first."""
    return (
        get_user_model()
        .objects.annotate(live_leads=Count("owned_leads", filter=Q(owned_leads__deleted_at__isnull=True)))
        .order_by("-is_active", "first_name", "last_name", "email")
    )


def active_users():
    return get_user_model().objects.filter(is_active=True).order_by("first_name", "last_name", "email")
