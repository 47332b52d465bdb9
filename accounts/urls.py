from django.urls import path

from accounts import views

urlpatterns = [
    path("members/", views.members_home, name="members_home"),
    path("profile/", views.profile, name="profile"),
    path("labs/<slug:slug>/members/", views.lab_members, name="lab_members"),
    path("labs/<slug:slug>/members/<int:membership_pk>/role/", views.member_role, name="member_role"),
]
