from django.conf import settings
from django.contrib import admin
from django.db import connection
from django.http import JsonResponse
from django.urls import include, path, re_path
from django.utils.csp import CSP
from django.views.decorators.csp import csp_override
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from approvals.api import ApprovalRequestViewSet, FlagApprovalRequestList
from audit.api import AuditEntryViewSet, WebhookViewSet
from flags.api import EnvironmentViewSet, FlagStateView, FlagViewSet, ProjectViewSet
from flagship import views as web_views
from flagship.api import LoginView, MemberViewSet, RefreshView
from flagship.bench_api import BenchPingView
from flagship.exceptions import json_not_found, json_server_error

router = SimpleRouter(trailing_slash=False)
router.register("members", MemberViewSet, basename="member")
router.register("projects", ProjectViewSet, basename="project")
router.register(
    r"projects/(?P<project_id>[^/]+)/environments", EnvironmentViewSet, basename="environment"
)
router.register(r"projects/(?P<project_id>[^/]+)/flags", FlagViewSet, basename="flag")
router.register(
    r"projects/(?P<project_id>[^/]+)/flags/(?P<flag_key>[^/]+)/environments/(?P<env_id>[^/]+)"
    r"/approvals",
    FlagApprovalRequestList,
    basename="flag-approval",
)
router.register("approvals", ApprovalRequestViewSet, basename="approval")
router.register("audit", AuditEntryViewSet, basename="audit")
router.register("webhooks", WebhookViewSet, basename="webhook")


@csrf_exempt
@require_GET
def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        return JsonResponse({"status": "unavailable", "database": "down"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


api_v1 = [
    path("auth/login", LoginView.as_view(), name="auth-login"),
    path("auth/refresh", RefreshView.as_view(), name="auth-refresh"),
    path(
        "projects/<str:project_id>/flags/<str:flag_key>/environments/<str:env_id>",
        FlagStateView.as_view(),
        name="flag-state",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file, so no inline script is needed; the
    # Swagger UI page carries one inline <style> block.
    path(
        "docs/",
        csp_override({**settings.SECURE_CSP, "style-src": [CSP.SELF, CSP.UNSAFE_INLINE]})(
            SpectacularSwaggerSplitView.as_view(url_name="schema")
        ),
        name="docs",
    ),
    *router.urls,
    *(
        [path("bench/ping", BenchPingView.as_view(), name="bench-ping")]
        if settings.BENCH_ENDPOINTS
        else []
    ),
    # Everything under /v1 answers JSON, unknown routes included.
    re_path(r"^.*$", csrf_exempt(json_not_found)),
]

urlpatterns = [
    path("v1", csrf_exempt(json_not_found)),
    path("v1/", include(api_v1)),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("login/", web_views.LoginView.as_view(), name="login"),
    path("logout/", web_views.LogoutView.as_view(), name="logout"),
    path("", RedirectView.as_view(pattern_name="approvals:queue"), name="home"),
    path("", include("approvals.urls")),
]

handler404 = "flagship.urls.page_not_found"
handler500 = "flagship.urls.server_error"


def page_not_found(request, exception=None):
    if request.path.startswith("/v1/"):
        return json_not_found(request, exception)
    from django.views.defaults import page_not_found as html_page_not_found

    return html_page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/v1/"):
        return json_server_error(request)
    from django.views.defaults import server_error as html_server_error

    return html_server_error(request)
