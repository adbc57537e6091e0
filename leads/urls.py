"""Board and lead page URLs."""

from django.urls import path

from leads import (
    attachment_views,
    capture_views,
    dashboard_views,  # dashboard: the /dashboard/ page and its CSV tables
    export_views,  # export: the board's CSV
    follow_up_views,
    import_views,  # CSV import pages
    live_views,
    merge_views,
    notification_views,
    views,
)

app_name = "leads"
urlpatterns = [
    path("", views.home, name="home"),
    path("board/", views.board, name="board"),
    path("board/export.csv", export_views.board_export, name="board_export"),  # export: CSV of the board
    path("leads/new/", views.quick_add, name="quick_add"),
    path("leads/<int:pk>/", views.detail, name="detail"),
    path("leads/<int:pk>/edit/", views.edit, name="edit"),
    path("leads/<int:pk>/move/", views.move, name="move"),
    path("leads/<int:pk>/activities/", views.log_activity, name="log_activity"),
    path("leads/<int:pk>/reassign/", views.reassign, name="reassign"),
    path("leads/<int:pk>/claim/", views.claim, name="claim"),
    path("leads/<int:pk>/delete/", views.delete, name="delete"),
    # The public capture form.
    path("apply/", capture_views.apply, name="apply"),
    path("apply/thanks/", capture_views.apply_thanks, name="apply_thanks"),
    # Files on a lead.
    path("leads/<int:pk>/files/", attachment_views.upload, name="attachment_upload"),
    path("leads/<int:pk>/files/<int:file_id>/", attachment_views.download, name="attachment_download"),
    path("leads/<int:pk>/files/<int:file_id>/delete/", attachment_views.delete, name="attachment_delete"),
    # Merging duplicates.
    path("leads/<int:pk>/merge/<int:other_pk>/", merge_views.merge, name="merge"),
    path("leads/merges/<int:merge_id>/undo/", merge_views.undo, name="undo_merge"),
    # Follow-ups.
    path("follow-ups/", follow_up_views.follow_up_list, name="follow_ups"),
    # dashboard: KPI tiles, charts and tables; each table as CSV with the same filters.
    path("dashboard/", dashboard_views.dashboard, name="dashboard"),
    path("dashboard/<slug:table>.csv", dashboard_views.dashboard_csv, name="dashboard_csv"),
    path("leads/<int:pk>/follow-ups/", follow_up_views.schedule, name="schedule_follow_up"),
    path("follow-ups/<int:pk>/complete/", follow_up_views.complete, name="complete_follow_up"),
    path("follow-ups/<int:pk>/cancel/", follow_up_views.cancel, name="cancel_follow_up"),
    # CSV imports: upload, mapping and preview, progress, result, cancel, revert, error report.
    path("imports/", import_views.import_list, name="imports"),
    path("imports/<int:pk>/", import_views.import_detail, name="import_detail"),
    path("imports/<int:pk>/start/", import_views.import_start, name="import_start"),
    path("imports/<int:pk>/cancel/", import_views.import_cancel, name="import_cancel"),
    path("imports/<int:pk>/revert/", import_views.import_revert, name="import_revert"),
    path("imports/<int:pk>/errors.csv", import_views.import_errors, name="import_errors"),
    path("imports/<int:pk>/progress/", import_views.import_progress, name="import_progress"),
    # The bell.
    path("notifications/", notification_views.inbox, name="notifications"),
    path("notifications/unread/", notification_views.unread, name="notifications_unread"),
    path("notifications/read-all/", notification_views.mark_all_read, name="notifications_read_all"),
    path("notifications/<int:pk>/open/", notification_views.open_notification, name="notification_open"),
    # The live board's card endpoint.
    path("board/cards/<int:pk>/", live_views.card, name="live_card"),
]
