"""Board and lead page URLs."""

from django.urls import path

from leads import views

app_name = "leads"
urlpatterns = [
    path("", views.home, name="home"),
    path("board/", views.board, name="board"),
    path("leads/new/", views.quick_add, name="quick_add"),
    path("leads/<int:pk>/", views.detail, name="detail"),
    path("leads/<int:pk>/edit/", views.edit, name="edit"),
    path("leads/<int:pk>/move/", views.move, name="move"),
    path("leads/<int:pk>/activities/", views.log_activity, name="log_activity"),
    path("leads/<int:pk>/reassign/", views.reassign, name="reassign"),
    path("leads/<int:pk>/claim/", views.claim, name="claim"),
    path("leads/<int:pk>/delete/", views.delete, name="delete"),
    # [urls: capture form]
    # [urls: attachments]
    # [urls: merge]
    # [urls: follow-ups]
    # [urls: notifications]
    # [urls: live board]
]
