from django.urls import path

from vdi import (
    console_views,
    file_views,
    preference_views,
    recording_views,
    snapshot_views,
    views,
)

urlpatterns = [
    path("", views.desktop_list, name="desktop-list"),
    path("settings/", preference_views.preferences_page, name="preferences"),
    path("recordings/<int:pk>/", recording_views.recording_replay, name="recording-replay"),
    path("desktops/<int:pk>/snapshots/", snapshot_views.snapshot_page, name="desktop-snapshots"),
    path("desktops/<int:pk>/snapshots/take/", snapshot_views.snapshot_take,
         name="snapshot-take"),
    path("snapshots/<int:pk>/revert/", snapshot_views.snapshot_revert, name="snapshot-revert"),
    path("snapshots/<int:pk>/delete/", snapshot_views.snapshot_delete, name="snapshot-delete"),
    path("desktops/<int:pk>/files/", file_views.files_status, name="desktop-files"),
    path("desktops/<int:pk>/files/upload/", file_views.files_upload, name="desktop-files-upload"),
    path("desktops/<int:pk>/files/list/", file_views.files_list, name="desktop-files-list"),
    path("desktops/<int:pk>/files/fetch/", file_views.files_fetch, name="desktop-files-fetch"),
    path("files/<int:transfer_id>/", file_views.file_download, name="file-download"),
    path("recordings/<int:pk>/file/", recording_views.recording_file, name="recording-file"),
    path("desktops/new/", views.desktop_create, name="desktop-create"),
    path("desktops/rows/", views.desktop_rows, name="desktop-rows"),
    path("pools/<int:pk>/claim/", views.pool_claim, name="pool-claim"),
    path("desktops/<int:pk>/console/", console_views.console_page, name="desktop-console"),
    path("desktops/<int:pk>/console/ticket/", console_views.console_ticket,
         name="desktop-console-ticket"),
    path("desktops/<int:pk>/console/remote-viewer.vv", console_views.console_vv,
         name="desktop-console-vv"),
    path("desktops/<int:pk>/console/diagnose/", console_views.console_diagnose,
         name="desktop-console-diagnose"),
    path("desktops/<int:pk>/<str:action>/", views.desktop_action, name="desktop-action"),
]
