from django.urls import path

from assistant import views

urlpatterns = [
    path("assistant/", views.assistant_page, name="assistant"),
    path("assistant/ask/", views.assistant_ask, name="assistant_ask"),
    path("cases/<int:pk>/assistant/", views.case_assistant_panel, name="case_assistant_panel"),
]
