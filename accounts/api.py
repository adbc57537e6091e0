"""JWT endpoints (token, refresh, logout, log out everywhere) and the current user, for API clients."""

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.exceptions import APIException, AuthenticationFailed, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts import lockout, security_log, services
from accounts.jwt import EpochTokenObtainPairSerializer
from leads.api.serializers import LogoutSerializer, TokenPairSerializer, UserSerializer
from leads.api.views import WITH_BODY, errors


@extend_schema(
    summary="Log in: trade e-mail and password for an access and a refresh token",
    responses={200: TokenPairSerializer, **errors(*WITH_BODY, 401, 429)},
)
class TokenView(TokenObtainPairView):
    serializer_class = EpochTokenObtainPairSerializer

    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except AuthenticationFailed:
            # django-axes flags the request when this attempt hit the limit or the client was
            # already locked out: say so (429, Retry-After) rather than "wrong password".
            if getattr(request, "axes_locked_out", False):
                credentials = {"email": request.data.get("email")} if hasattr(request.data, "get") else {}
                raise LoginLockedOut(
                    lockout.lockout_message(request, credentials),
                    wait=lockout.retry_after_seconds(request, credentials),
                ) from None
            raise


class LoginLockedOut(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "locked_out"

    def __init__(self, detail, *, wait):
        super().__init__(detail)
        # DRF's exception handler turns `wait` into the Retry-After header.
        self.wait = wait


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
            token = RefreshToken(data.validated_data["refresh"])
            token.blacklist()
        except TokenError as exc:
            raise ValidationError({"refresh": [str(exc)]}) from None
        user = get_user_model().objects.filter(pk=token.get("user_id")).first()
        security_log.log_event("logout", request=request, user=user, reason="API refresh token")
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutAllView(APIView):
    @extend_schema(
        summary="Log out everywhere: every session and every token of the signed-in user stops working",
        request=None,
        responses={204: OpenApiResponse(description="Logged out everywhere"), **errors(401, 429)},
    )
    def post(self, request):
        stopped = services.log_out_everywhere(user=request.user)
        security_log.log_event("logout_everywhere", request=request, user=request.user, tokens=stopped)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    @extend_schema(
        summary="The signed-in user, with role", responses={200: UserSerializer, **errors(401, 429)}
    )
    def get(self, request):
        return Response(UserSerializer(request.user).data)
