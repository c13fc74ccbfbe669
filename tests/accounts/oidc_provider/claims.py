import json

from oauth2_provider.oauth2_validators import OAuth2Validator


class ClaimsValidator(OAuth2Validator):
    """Puts the person's address, whether it is verified, and their groups in the ID token and userinfo;
    how they signed in (``amr``, ``acr``) in the ID token only, where OpenID Connect puts them."""

    oidc_claim_scope = None

    def get_additional_claims(self, request):
        user = request.user
        return {
            "email": user.email,
            # The provider vouches for addresses of people whose last name says so (set by the tests).
            "email_verified": user.last_name != "unverified",
            "preferred_username": user.username,
            "groups": sorted(user.groups.values_list("name", flat=True)),
        }

    def get_id_token_dictionary(self, token, token_handler, request):
        claims, expiration_time = super().get_id_token_dictionary(token, token_handler, request)
        signed_in = json.loads(request.user.first_name or "{}")  # written by urls.SignInView
        claims["amr"] = signed_in.get("amr") or ["pwd"]
        if signed_in.get("acr"):
            claims["acr"] = signed_in["acr"]
        return claims, expiration_time
