from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("invitations/<str:token>/", views.invitation_accept, name="invitation"),
    path("sessions/sign-out-everywhere/", views.sign_out_everywhere, name="sign_out_everywhere"),
]
