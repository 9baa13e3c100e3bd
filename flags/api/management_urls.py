"""Management URLs, under /api/v1/: everything lives in a project."""

from django.urls import path

from flags.api import change_requests as cr
from flags.api import grants as g
from flags.api import management as m

P = "projects/<str:project>"
S = f"{P}/flags/<str:key>/environments/<str:env>"

urlpatterns = [
    path(f"{P}/environments", m.EnvironmentList.as_view(), name="api-environments"),
    path(f"{P}/environments/<str:env>", m.EnvironmentDetail.as_view(), name="api-environment"),
    path(f"{P}/environments/<str:env>/flags", m.StateList.as_view(), name="api-states"),
    path(f"{P}/flags", m.FlagList.as_view(), name="api-flags"),
    path(f"{P}/flags/<str:key>", m.FlagDetail.as_view(), name="api-flag"),
    path(S, m.StateDetail.as_view(), name="api-state"),
    path(f"{S}/kill", m.Kill.as_view(), name="api-kill"),
    path(f"{S}/serve", m.Serve.as_view(), name="api-serve"),
    path(f"{S}/history", m.History.as_view(), name="api-history"),
    path(f"{S}/revert", m.Revert.as_view(), name="api-revert"),
    path(f"{P}/segments", m.SegmentList.as_view(), name="api-segments"),
    path(f"{P}/segments/<str:key>", m.SegmentDetail.as_view(), name="api-segment"),
    path(f"{P}/change-requests", cr.ChangeRequestList.as_view(), name="api-change-requests"),
    path(f"{P}/change-requests/<int:pk>", cr.ChangeRequestDetail.as_view(), name="api-cr"),
    path(f"{P}/change-requests/<int:pk>/<str:decision>", cr.Decide.as_view(), name="api-cr-do"),
    path(f"{P}/role-grants", g.GrantList.as_view(), name="api-role-grants"),
    path(f"{P}/role-grants/<int:pk>", g.GrantDetail.as_view(), name="api-role-grant"),
]
