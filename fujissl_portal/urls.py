from allauth.account import views as allauth_views
from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from api.metrics import metrics_view

# The admin signs in through the portal's login: one form, with its lockout and
# second factor, instead of a second one without them.
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    # allauth's login under the name the portal (and LOGIN_URL) uses.
    path("accounts/login/", allauth_views.login, name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password/",
        auth_views.PasswordChangeView.as_view(success_url="/"),
        name="password_change",
    ),
    path("accounts/", include("allauth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("agent/", include("api.agent_urls")),
    path("metrics", metrics_view, name="metrics"),
    path("", include("certificates.urls")),
]
