from oauth2_provider.oauth2_validators import OAuth2Validator


class ClaimsValidator(OAuth2Validator):
    """Puts the person's address, whether it is verified, and their groups in the ID token and userinfo."""

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
