"""JWT endpoints (token, refresh, logout) and the current user, for API clients."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from leads.api.serializers import LogoutSerializer, TokenPairSerializer, UserSerializer
from leads.api.views import WITH_BODY, errors


@extend_schema(
    summary="Log in: trade e-mail and password for an access and a refresh token",
    responses={200: TokenPairSerializer, **errors(*WITH_BODY, 401, 429)},
)
class TokenView(TokenObtainPairView):
    pass


@extend_schema(
    summary="Trade a refresh token for new access and refresh tokens; the old refresh token stops working",
    responses={200: TokenPairSerializer, **errors(*WITH_BODY, 401, 429)},
)
class TokenRefresh(TokenRefreshView):
    pass


class LogoutView(APIView):
    # The refresh token in the body is the authority, as for token refresh: a client whose
    # access token has expired (it still sends it) must be able to log out, not get a 401.
    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        summary="Log out: the refresh token stops working",
        request=LogoutSerializer,
        responses={204: OpenApiResponse(description="Logged out"), **errors(*WITH_BODY, 429)},
    )
    def post(self, request):
        data = LogoutSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            RefreshToken(data.validated_data["refresh"]).blacklist()
        except TokenError as exc:
            raise ValidationError({"refresh": [str(exc)]}) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    @extend_schema(
        summary="The signed-in user, with role", responses={200: UserSerializer, **errors(401, 429)}
    )
    def get(self, request):
        return Response(UserSerializer(request.user).data)
