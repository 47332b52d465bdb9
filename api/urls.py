"""URL map of the REST API (mounted at /api/ by diagnostics.urls).

Every address ends with a slash; the last pattern answers any other /api/
address with the JSON 404 of the stable error shape.
"""

from __future__ import annotations

from django.urls import path, re_path

from api import views
from api.exceptions import api_not_found

urlpatterns = [
    path("schema/", views.SchemaView.as_view(), name="api-schema"),
    path("docs/", views.DocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("health/", views.HealthView.as_view(), name="api-health"),
    path("token/", views.TokenView.as_view(), name="api-token"),
    path("models/", views.ModelVersionListView.as_view(), name="api-models"),
    path("cases/", views.CaseListView.as_view(), name="api-cases"),
    path("cases/<int:pk>/", views.CaseDetailView.as_view(), name="api-case-detail"),
    path(
        "cases/<int:pk>/progress/",
        views.CaseProgressView.as_view(),
        name="api-case-progress",
    ),
    path(
        "cases/<int:pk>/summary/",
        views.CaseSummaryView.as_view(),
        name="api-case-summary",
    ),
    path("cases/<int:pk>/report/", views.CaseReportView.as_view(), name="api-case-report"),
    path(
        "cases/<int:pk>/report/draft/",
        views.CaseDraftReportView.as_view(),
        name="api-case-report-draft",
    ),
    path(
        "cases/<int:pk>/report/draft/<uuid:report_id>/",
        views.CaseDraftReportStatusView.as_view(),
        name="api-case-report-draft-status",
    ),
    path("cases/<int:pk>/images/", views.CaseImagesView.as_view(), name="api-case-images"),
    path(
        "cases/<int:pk>/images/<int:image_pk>/",
        views.ImageDetailView.as_view(),
        name="api-image-detail",
    ),
    path(
        "cases/<int:pk>/images/<int:image_pk>/files/<str:kind>/",
        views.ImageFileView.as_view(),
        name="api-image-file",
    ),
    re_path(r"^.*$", api_not_found),
]
