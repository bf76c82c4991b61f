import time
from functools import cache

from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError
from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings

from flagship import sql
from flagship.models import Membership, Organization, User

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
            user = active_member(user_id)
        except (ValidationError, ValueError, TypeError):
            user = None
        if user is None:
            raise AuthenticationFailed("user not found or no longer a member") from None
        return user

    def authenticate(self, request):
        try:
            return super().authenticate(request)
        except (OverflowError, ValueError, TypeError):
            # A validly signed token with absurd claims (an `exp` past year 9999, say).
            raise InvalidToken("token contains invalid claims") from None

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


@cache
def member_query(vendor: str):
    """The SQL of `active_member` and the converters of its three models' columns, built once
    per process (`vendor` keys the cache: the SQL and converters are the backend's)."""
    selected = ", ".join(
        sql.columns(User, "u") + sql.columns(Membership, "m") + sql.columns(Organization, "o")
    )
    query = (
        f"SELECT {selected} FROM {sql.table(User, 'u')} "
        f'INNER JOIN {sql.table(Membership, "m")} ON "m"."user_id" = "u"."id" '
        f'INNER JOIN {sql.table(Organization, "o")} ON "o"."id" = "m"."org_id" '
        'WHERE "u"."id" = %s AND "u"."is_active"'
    )
    return query, [
        (model, sql.model_converters(model)) for model in (User, Membership, Organization)
    ]


def active_member(user_id) -> User | None:
    """The active user with this id, their membership and organization loaded with them, or
    None (deactivated, no membership, no such user). One query, as
    `User.objects.select_related("membership__org").get(pk=user_id, is_active=True,
    membership__isnull=False)` would run, in plain SQL: this runs on every authenticated
    request, and building that query through the ORM cost more than running it. Raises
    ValidationError for an id that is not a UUID."""
    db = sql.thread_connection()
    query, readers = member_query(db.vendor)
    row = first_read(query, [User._meta.pk.get_db_prep_value(user_id, db)])
    if row is None:
        return None
    user, membership, org = sql.instances_from(row, readers)
    # What select_related() would have cached: user.membership, membership.user, membership.org.
    User._meta.get_field("membership").set_cached_value(user, membership)
    Membership._meta.get_field("user").set_cached_value(membership, user)
    Membership._meta.get_field("org").set_cached_value(membership, org)
    return user


def first_read(query: str, params: list):
    """Runs a request's first statement, outside any transaction, and returns its first row.

    The statement doubles as the health check of a reused connection: one that died (the
    database restarted) is replaced and the statement run once more, as Django's health check
    would have done with a `SELECT 1` before it, a round trip on every request."""
    db = sql.thread_connection()
    reused_unchecked = (
        db.connection is not None
        and db.health_check_enabled
        and not db.health_check_done
        and not db.in_atomic_block
    )
    db.health_check_done = True
    try:
        with db.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchone()
    except (OperationalError, InterfaceError):
        if not reused_unchecked:
            raise
    db.close()
    with db.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchone()
