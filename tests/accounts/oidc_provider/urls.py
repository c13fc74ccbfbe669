import json

from django.contrib.auth.views import LoginView
from django.urls import include, path


class SignInView(LoginView):
    """The provider's password form. The test playing the browser may say which other methods the
    person used this time (``amr`` fields, RFC 8176 names) and the level reached (``acr``), as a
    provider with two-factor of its own would record them; the ID token then reports them."""

    def form_valid(self, form):
        user = form.get_user()
        # The provider's record of the person's last sign-in, read when the ID token is made.
        user.first_name = json.dumps(
            {"amr": self.request.POST.getlist("amr") or ["pwd"], "acr": self.request.POST.get("acr", "")}
        )[:150]
        user.save(update_fields=["first_name"])
        return super().form_valid(form)


urlpatterns = [
    path("login/", SignInView.as_view(), name="login"),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
]
