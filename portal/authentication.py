"""API authentication with the portal's DRF tokens sent the way Defender's clients send theirs.

Scripts written for Microsoft Defender for Endpoint put their access token in
`Authorization: Bearer <token>`. The Defender-compatible endpoints (`/api/...`) accept the
portal's own tokens (`manage.py create_api_token`, or the admin) in that form, and in the
`Authorization: Token <token>` form of `/api/v1/`.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header

KEYWORDS = (b"bearer", b"token")


class BearerTokenAuthentication(TokenAuthentication):
    """`Authorization: Bearer <key>` or `Authorization: Token <key>`; anonymous answers 401 `Bearer`."""

    keyword = "Bearer"

    def authenticate(self, request):
        auth = get_authorization_header(request).split()
        if not auth or auth[0].lower() not in KEYWORDS:
            return None
        if len(auth) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: expected `Bearer <token>`.")
        try:
            key = auth[1].decode("ascii")
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        if not key.isalnum() or len(key) > 40:  # DRF keys are 40 hex digits; never send NUL to the database
            raise exceptions.AuthenticationFailed("Invalid token.")
        return self.authenticate_credentials(key)


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes BearerTokenAuthentication."""

    target_class = BearerTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The portal's API token (`manage.py create_api_token USERNAME`) as "
            "`Authorization: Bearer <token>`; `Authorization: Token <token>` works as well.",
        }
