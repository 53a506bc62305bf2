"""ASGI entry for daphne: HTTP goes to Django, websockets to the console route.

Every websocket passes the Origin checks (its host in ALLOWED_HOSTS, and exactly one of
ALLOWED_ORIGINS: scheme, host and port) and the session/auth middleware
before the consumer sees it; the flow-control layer is outermost so it sees the server's send.
An ISO upload whose declared length passes its limit is refused before its body is read.
"""

from __future__ import annotations

import os
import re

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import (  # noqa: E402
    AllowedHostsOriginValidator,
    OriginValidator,
)
from django.conf import settings  # noqa: E402
from django.urls import reverse  # noqa: E402

from portal.limits import BodyLimit, BodyLimitMiddleware  # noqa: E402
from portal.proxy import TrustedProxyMiddleware  # noqa: E402
from vdi.console.flow import FlowControlMiddleware  # noqa: E402
from vdi.console.notify import ServerLoopMiddleware  # noqa: E402
from vdi.console.routing import websocket_urlpatterns  # noqa: E402

websocket_app = FlowControlMiddleware(
    AllowedHostsOriginValidator(
        OriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), settings.ALLOWED_ORIGINS
        )
    )
)
http_app = BodyLimitMiddleware(django_asgi_app, [
    BodyLimit(re.escape(reverse("admin:vdi_installmedia_upload")),
              settings.MEDIA_UPLOAD_MAX_BYTES, "VDI_MEDIA_UPLOAD_MAX_BYTES",
              "add a bigger ISO by its path instead"),
    BodyLimit(r"/desktops/\d+/files/upload/", settings.FILE_TRANSFER_MAX_BYTES,
              "VDI_FILE_TRANSFER_MAX_BYTES"),
])
application = ServerLoopMiddleware(TrustedProxyMiddleware(
    ProtocolTypeRouter({"http": http_app, "websocket": websocket_app}),
    settings.TRUSTED_PROXY_COUNT,
))
