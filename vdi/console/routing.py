from django.urls import path

from vdi.console.consumer import ConsoleConsumer
from vdi.console.spice_consumer import SpiceConsumer
from vdi.live.consumer import LiveConsumer

websocket_urlpatterns = [
    path("ws/desktops/<int:desktop_id>/console/", ConsoleConsumer.as_asgi()),
    path("ws/desktops/<int:desktop_id>/spice/", SpiceConsumer.as_asgi()),
    path("ws/live/", LiveConsumer.as_asgi()),
]
