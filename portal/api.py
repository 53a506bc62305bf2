"""Settings of the REST API (Django REST framework, drf-spectacular), imported by
``portal.settings``."""

from __future__ import annotations

from typing import Any

REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "vdi.api.authentication.TokenAuthentication",  # first: anonymous calls get 401
        "rest_framework.authentication.SessionAuthentication",  # the portal's pages
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "vdi.api.permissions.TokenScope",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "vdi.api.pagination.Pages",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "vdi.api.errors.handle",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS: dict[str, Any] = {
    "TITLE": "VDI portal API",
    "DESCRIPTION": (
        "Desktops, their snapshots and backups, pools, images, hosts, operations, audit and "
        "quotas. Authenticate with a personal token (`Authorization: Bearer vdi_...`, made on "
        "the portal's API tokens page) or the browser session. A token with the `read` scope "
        "only reads; `write` also acts. Errors are JSON: "
        "`{\"error\": {\"code\": ..., \"message\": ...}}`."),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],  # public: credentials sent with it are not even looked at
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "vdi.api.schema.add_error_responses",
    ],
}
