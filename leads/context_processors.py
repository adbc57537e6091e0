"""Template context for every page: the unread count behind the header's notification bell."""

from functools import cache

from leads.notifications import unread_count


def notifications(request):
    """`unread_notifications`, counted lazily: one query where the bell renders, none elsewhere.

    Templates call a callable when they resolve it, so pages without the bell (admin, JSON
    fragments, signed-out pages) never run the query, and `cache` keeps it to one per request.
    """

    @cache
    def count():
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return 0
        return unread_count(user)

    return {"unread_notifications": count}
