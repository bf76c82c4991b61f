from django.urls import path

from approvals import views

app_name = "approvals"

urlpatterns = [
    path("review/", views.queue, name="queue"),
    path("review/<uuid:pk>/", views.detail, name="detail"),
    path("review/<uuid:pk>/approve/", views.approve, name="approve"),
    path("review/<uuid:pk>/reject/", views.reject, name="reject"),
    path("review/<uuid:pk>/cancel/", views.cancel, name="cancel"),
]
