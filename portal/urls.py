"""URL root: the portal's pages, sign-in, the Django admin, metrics and health."""

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from vdi import health, metrics, oidc

# The admin signs in through the same page (and two-factor step) as everyone else.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]

handler404 = "vdi.api.errors.page_not_found"  # JSON under /api/
handler500 = "vdi.api.errors.server_error"
handler429 = "vdi.views.rate_limited"  # allauth's other rate limits (password reset...)

urlpatterns = [
    path("metrics", metrics.metrics_view, name="metrics"),
    path("health/live", health.LiveView.as_view(), name="health-live"),
    path("health/ready", health.ReadyView.as_view(), name="health-ready"),
    path("admin/", admin.site.urls),
    # allauth's OpenID Connect views, with the ID token's signature and the issuer checked.
    path("accounts/oidc/<str:provider_id>/login/", oidc.login),
    path("accounts/oidc/<str:provider_id>/login/callback/", oidc.callback),
    path("accounts/", include("allauth.urls")),
    path("api/", include("vdi.api.urls")),
    path("", include("vdi.urls")),
]
