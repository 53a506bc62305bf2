from django.urls import path

from vdi import views

urlpatterns = [
    path("", views.desktop_list, name="desktop-list"),
    path("desktops/new/", views.desktop_create, name="desktop-create"),
    path("desktops/<int:pk>/<str:action>/", views.desktop_action, name="desktop-action"),
]
