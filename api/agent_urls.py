"""The agent protocol (docs/agent-protocol.md), mounted at /agent/."""

from django.urls import path

from . import agent_views

app_name = "agent"
urlpatterns = [
    path("v1/enrol", agent_views.EnrolView.as_view(), name="enrol"),
    path("v1/checkin", agent_views.CheckInView.as_view(), name="checkin"),
    path("v1/challenges", agent_views.ChallengesView.as_view(), name="challenges"),
    path("v1/csr", agent_views.CSRView.as_view(), name="csr"),
    path("v1/reports", agent_views.ReportView.as_view(), name="reports"),
    path("download/<str:name>", agent_views.download, name="download"),
]
