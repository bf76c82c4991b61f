from datetime import UTC, datetime

from django.contrib.auth import authenticate
from django.db import transaction
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from audit.middleware import client_ip
from flagship import permissions
from flagship.authentication import MemberJWTAuthentication
from flagship.lookups import get_or_404
from flagship.models import Membership, MembershipActions, User
from flagship.serializers import (
    LoginSerializer,
    MemberCreateSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    OrganizationSerializer,
    RefreshSerializer,
    UserSerializer,
)
from flagship.throttling import FailedLoginThrottle

TokensSchema = inline_serializer(
    "Tokens",
    {
        "access_token": serializers.CharField(),
        "refresh_token": serializers.CharField(),
        "expires_at": serializers.DateTimeField(),
    },
)


def token_pair(refresh: RefreshToken) -> dict:
    access = refresh.access_token
    expires_at = datetime.fromtimestamp(access["exp"], tz=UTC)
    return {
        "access_token": str(access),
        "refresh_token": str(refresh),
        "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
    }


def active_member(user_id) -> User:
    user = (
        User.objects.select_related("membership__org")
        .filter(pk=user_id, is_active=True, membership__isnull=False)
        .first()
    )
    if user is None:
        raise AuthenticationFailed("user not found or no longer a member")
    return user


class TokenEndpoint(APIView):
    """Open to anyone; refused credentials or tokens answer 401 (DRF turns 401 into 403 when a
    view names no authentication scheme for the WWW-Authenticate header)."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request):
        return MemberJWTAuthentication().authenticate_header(request)


class LoginView(TokenEndpoint):
    @extend_schema(
        request=LoginSerializer,
        responses={
            200: inline_serializer(
                "LoginResponse",
                {
                    "user": UserSerializer(),
                    "organization": OrganizationSerializer(),
                    "tokens": TokensSchema,
                },
            )
        },
        auth=[],
    )
    def post(self, request):
        body = LoginSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        email = body.validated_data["email"].strip()
        throttle = FailedLoginThrottle(ip=client_ip(request), email=email)
        throttle.check()
        user = authenticate(request, email=email, password=body.validated_data["password"])
        if user is None or user.membership_or_none is None:
            throttle.record_failure()
            raise AuthenticationFailed("invalid email or password")
        throttle.reset_email()
        return Response(
            {
                "user": UserSerializer(user).data,
                "organization": OrganizationSerializer(user.membership.org).data,
                "tokens": token_pair(RefreshToken.for_user(user)),
            }
        )


class RefreshView(TokenEndpoint):
    """Rotates a refresh token: the one presented is blacklisted and never accepted again."""

    @extend_schema(request=RefreshSerializer, responses={200: TokensSchema}, auth=[])
    def post(self, request):
        body = RefreshSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with transaction.atomic():
            try:
                presented = RefreshToken(body.validated_data["refresh_token"])
            except TokenError as error:
                raise InvalidToken(str(error)) from None
            # Lock the token's row so two concurrent refreshes cannot both rotate it.
            outstanding = (
                # of=self: the token's default ordering joins the nullable user, and PostgreSQL
                # cannot lock the nullable side of an outer join.
                OutstandingToken.objects.select_for_update(of=("self",))
                .filter(jti=presented["jti"])
                .first()
            )
            if outstanding is None or BlacklistedToken.objects.filter(token=outstanding).exists():
                raise InvalidToken("token is blacklisted")
            user = active_member(presented.get("user_id"))
            BlacklistedToken.objects.create(token=outstanding)
            return Response(token_pair(RefreshToken.for_user(user)))


class MemberViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = MemberSerializer
    # Names the model for the OpenAPI schema; get_queryset() scopes rows to the caller.
    queryset = Membership.objects.none()
    lookup_field = "user_id"
    lookup_url_kwarg = "user_id"
    lookup_value_regex = "[^/]+"
    abilities = {
        "create": permissions.MANAGE,
        "partial_update": permissions.MANAGE,
        "destroy": permissions.MANAGE,
    }

    def get_queryset(self):
        return (
            Membership.objects.filter(org_id=self.request.user.org_id)
            .select_related("user")
            .order_by("-created_at", "-id")
        )

    def get_object(self):
        return get_or_404(self.get_queryset(), "member", user_id=self.kwargs["user_id"])

    @extend_schema(request=MemberCreateSerializer, responses={201: MemberSerializer})
    def create(self, request):
        body = MemberCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership = MembershipActions.add(by=request.user, **body.validated_data)
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MemberUpdateSerializer, responses={200: MemberSerializer})
    def partial_update(self, request, user_id=None):
        membership = self.get_object()
        body = MemberUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        MembershipActions.update(by=request.user, membership=membership, **body.validated_data)
        membership = self.get_queryset().get(pk=membership.pk)
        return Response(MemberSerializer(membership).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, user_id=None):
        MembershipActions.remove(by=request.user, membership=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
