from django.urls import path

from reports import views

urlpatterns = [
    path("cases/<int:pk>/reports/", views.case_reports, name="case_reports"),
    path("cases/<int:pk>/reports/panel/", views.case_reports_panel, name="case_reports_panel"),
    path("cases/<int:pk>/reports/draft/", views.report_draft, name="report_draft"),
    path("cases/<int:pk>/reports/draft/<uuid:report_id>/", views.report_draft_status, name="report_draft_status"),
    path("reports/<uuid:report_id>/download/", views.report_download, name="report_download"),
    path("verify/", views.verify_upload, name="verify_upload"),
    path("verify/<uuid:report_id>/<str:code>", views.verify_report, name="verify_report"),
]
