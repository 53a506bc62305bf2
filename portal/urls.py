"""URL root: the portal's pages, sign-in and the Django admin."""

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

# The admin signs in through the same page (and two-factor step) as everyone else.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]

handler404 = "vdi.api.errors.page_not_found"  # JSON under /api/
handler500 = "vdi.api.errors.server_error"
handler429 = "vdi.views.rate_limited"  # allauth's other rate limits (password reset...)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/", include("vdi.api.urls")),
    path("", include("vdi.urls")),
]
