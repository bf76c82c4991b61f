"""The benchmark's ceiling: a DRF view that touches neither the database nor authentication.

Routed only when BENCH_ENDPOINTS is on, so bench/run.py can compare every endpoint with the
cost of DRF itself on the same server."""

from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


class BenchPingView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    def get(self, request):
        return Response({"ok": True})
