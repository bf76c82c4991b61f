import time

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings

from flagship.models import User

# Access tokens whose signature and claims this process has already checked, until they expire.
# A client sends the same token with every request for an hour; checking it again each time was
# a measurable share of a small request. Bounded; emptied when full.
VALIDATED_TOKENS: dict[bytes, object] = {}
MAX_VALIDATED_TOKENS = 4096


class MemberJWTAuthentication(JWTAuthentication):
    """JWT bearer authentication that loads the user, membership and organization in one query
    and refuses tokens of deactivated users or users without a membership."""

    def get_validated_token(self, raw_token):
        token = VALIDATED_TOKENS.get(raw_token)
        if token is not None and token["exp"] > time.time():
            return token
        token = super().get_validated_token(raw_token)
        if len(VALIDATED_TOKENS) >= MAX_VALIDATED_TOKENS:
            VALIDATED_TOKENS.clear()
        VALIDATED_TOKENS[raw_token] = token
        return token

    def get_user(self, validated_token):
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError:
            raise InvalidToken(_("Token contained no recognizable user identification")) from None
        try:
            return User.objects.select_related("membership__org").get(
                pk=user_id, is_active=True, membership__isnull=False
            )
        except (User.DoesNotExist, ValidationError, ValueError, TypeError):
            raise AuthenticationFailed("user not found or no longer a member") from None

    def authenticate(self, request):
        try:
            return super().authenticate(request)
        except (OverflowError, ValueError, TypeError):
            # A validly signed token with absurd claims (an `exp` past year 9999, say).
            raise InvalidToken("token contains invalid claims") from None

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
