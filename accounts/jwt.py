"""JWTs that "log out everywhere" can stop: tokens carry the user's session epoch, checked on each request."""

from drf_spectacular.contrib.rest_framework_simplejwt import (
    SimpleJWTScheme,
    TokenObtainPairSerializerExtension,
)
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer

EPOCH_CLAIM = "epoch"


class EpochTokenObtainPairSerializer(TokenObtainPairSerializer):
    @classmethod
    def get_token(cls, user):
        token = super().get_token(user)
        # Copied into every access token made from this refresh token, rotated ones included.
        token[EPOCH_CLAIM] = user.session_epoch
        return token


class EpochJWTAuthentication(JWTAuthentication):
    """simplejwt's authentication, refusing access tokens older than the user's last "log out everywhere"."""

    def get_user(self, validated_token):
        user = super().get_user(validated_token)
        if validated_token.get(EPOCH_CLAIM, 0) != user.session_epoch:
            raise InvalidToken("This token was ended by 'log out everywhere'; log in again.")
        return user


# The OpenAPI schema: drf-spectacular describes simplejwt's own classes, not subclasses, unless told.
class _EpochTokenObtainSchema(TokenObtainPairSerializerExtension):
    target_class = EpochTokenObtainPairSerializer


class _EpochJWTScheme(SimpleJWTScheme):
    target_class = EpochJWTAuthentication
