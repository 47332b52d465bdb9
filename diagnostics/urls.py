from django.urls import path

from diagnostics import views

urlpatterns = [
    path("", views.worklist, name="worklist"),
]
