"""URL map: each area's module keeps its own ``urlpatterns``."""

from django.urls import include, path

from diagnostics.views import assistant, cases, monitoring, reports, review

urlpatterns = [
    path("", include(review.urlpatterns)),
    path("", include(cases.urlpatterns)),
    path("", include(reports.urlpatterns)),
    path("", include(assistant.urlpatterns)),
    path("", include(monitoring.urlpatterns)),
    path("api/", include("diagnostics.api.urls")),
]
