from django.urls import path

from . import views

app_name = "certificates"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("certificates/", views.certificate_list, name="certificates"),
    path("certificates/new/", views.certificate_create, name="certificate_create"),
    path("certificates/<int:pk>/", views.certificate_detail, name="certificate"),
    path("certificates/<int:pk>/edit/", views.certificate_edit, name="certificate_edit"),
    path("certificates/<int:pk>/renew/", views.renew, name="renew"),
    path("certificates/<int:pk>/deploy/", views.deploy, name="deploy"),
    path("certificates/<int:pk>/download/key/", views.download_key, name="download_key"),
    path("certificates/<int:pk>/download/<str:what>/", views.download, name="download"),
    path("hosts/", views.host_list, name="hosts"),
    path("hosts/new/", views.host_create, name="host_create"),
    path("hosts/<int:pk>/", views.host_detail, name="host"),
    path("hosts/<int:pk>/edit/", views.host_edit, name="host_edit"),
    path("hosts/<int:pk>/host-key/fetch/", views.fetch_host_key, name="host_key_fetch"),
    path("hosts/<int:pk>/host-key/confirm/", views.confirm_host_key, name="host_key_confirm"),
    path("hosts/<int:pk>/test/", views.test_connection, name="host_test"),
    path("ca-accounts/", views.ca_account_list, name="ca_accounts"),
    path("ca-accounts/new/", views.ca_account_create, name="ca_account_create"),
    path("ca-accounts/<int:pk>/", views.ca_account_detail, name="ca_account"),
    path("ca-accounts/<int:pk>/edit/", views.ca_account_edit, name="ca_account_edit"),
    path("ca-accounts/<int:pk>/top-up/", views.top_up, name="top_up"),
    path("orders/", views.order_list, name="orders"),
    path("orders/<int:pk>/", views.order_detail, name="order"),
    path("runs/", views.run_list, name="runs"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
    path("runs/<int:pk>/steps.json", views.run_steps, name="run_steps"),
    path("members/", views.member_list, name="members"),
    path("members/add/", views.member_add, name="member_add"),
    path("members/<int:pk>/role/", views.member_role, name="member_role"),
    path("members/<int:pk>/remove/", views.member_remove, name="member_remove"),
    path("organization/", views.switch_organization, name="switch_organization"),
    path("language/", views.set_language, name="set_language"),
]
