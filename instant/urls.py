from django.urls import path

from instant import views

urlpatterns = [
    path("instant/", views.instant_check, name="instant_check"),
    path("instant/<uuid:pk>/", views.instant_result, name="instant_result"),
    path("instant/<uuid:pk>/status/", views.instant_status, name="instant_status"),
    path("instant/<uuid:pk>/file/<str:kind>/", views.instant_file, name="instant_file"),
]
