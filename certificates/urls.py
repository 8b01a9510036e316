from django.urls import path

from . import views

app_name = "certificates"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("certificates/<int:pk>/", views.certificate_detail, name="certificate"),
    path("hosts/<int:pk>/", views.host_detail, name="host"),
    path("ca-accounts/<int:pk>/", views.ca_account_detail, name="ca_account"),
    path("orders/<int:pk>/", views.order_detail, name="order"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
]
