"""ASGI entry for daphne: HTTP goes to Django, websockets to the console route.

Every websocket passes the Origin checks (its host in ALLOWED_HOSTS, and exactly one of
ALLOWED_ORIGINS: scheme, host and port) and the session/auth middleware
before the consumer sees it; the flow-control layer is outermost so it sees the server's send.
A body whose declared length passes its page's limit (portal/limits.py) is refused before it
is read (the portal's daphne, portal/daphne_server.py, refuses it before storing it).
"""

from __future__ import annotations

import os

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

from portal.limits import BodyLimitMiddleware  # noqa: E402
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
http_app = BodyLimitMiddleware(django_asgi_app)
application = ServerLoopMiddleware(TrustedProxyMiddleware(
    ProtocolTypeRouter({"http": http_app, "websocket": websocket_app}),
    settings.TRUSTED_PROXY_COUNT,
))
