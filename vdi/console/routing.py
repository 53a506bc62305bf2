from django.urls import path

from vdi.console.consumer import ConsoleConsumer

websocket_urlpatterns = [
    path("ws/desktops/<int:desktop_id>/console/", ConsoleConsumer.as_asgi()),
]
