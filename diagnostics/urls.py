from django.conf import settings
from django.urls import path

from diagnostics import views

urlpatterns = [
    path("cases/new/", views.case_new, name="case_new"),
    path("cases/<int:pk>/", views.case_detail, name="case_detail"),
    path("cases/<int:pk>/images/", views.case_add_images, name="case_add_images"),
    path("cases/<int:pk>/progress/", views.case_progress, name="case_progress"),
    path("cases/<int:pk>/progress.json", views.case_progress_json, name="case_progress_json"),
    path(settings.MEDIA_URL.strip("/") + "/<path:name>", views.protected_media, name="protected_media"),
]
