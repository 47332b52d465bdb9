from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("diagnostics.urls")),
]

# JSON errors with the stable shape under /api/; Django's own pages elsewhere.
handler400 = "diagnostics.api.exceptions.handler400"
handler403 = "diagnostics.api.exceptions.handler403"
handler404 = "diagnostics.api.exceptions.handler404"
handler500 = "diagnostics.api.exceptions.handler500"
