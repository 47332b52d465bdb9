from django.contrib import admin
from django.urls import include, path

from accounts.views import activate_totp

# Each app keeps its own urlpatterns; every URL is the same as before the split into apps.
urlpatterns = [
    path("admin/", admin.site.urls),
    # allauth's TOTP activation, returning to the page that sent the user (accounts.views): before allauth's URLs.
    path("accounts/2fa/totp/activate/", activate_totp, name="mfa_activate_totp"),
    path("accounts/", include("allauth.urls")),
    path("", include("review.urls")),
    path("", include("diagnostics.urls")),
    path("", include("reports.urls")),
    path("", include("assistant.urls")),
    path("", include("monitoring.urls")),
    path("", include("accounts.urls")),
    path("", include("instant.urls")),
    path("api/", include("api.urls")),
]

# JSON errors with the stable shape under /api/; Django's own pages elsewhere.
handler400 = "api.exceptions.handler400"
handler403 = "api.exceptions.handler403"
handler404 = "api.exceptions.handler404"
handler500 = "api.exceptions.handler500"
