from django.urls import path

from monitoring import views
from monitoring.metrics import metrics_view

urlpatterns = [
    path("monitoring/", views.monitoring_dashboard, name="monitoring_dashboard"),
    path("monitoring/panels/", views.monitoring_panels, name="monitoring_panels"),
    path("monitoring/data.json", views.monitoring_data, name="monitoring_data"),
    path("metrics", metrics_view, name="metrics"),
]
