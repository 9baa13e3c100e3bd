"""Code references: CI uploads a scan (find_flag_references --upload); reads list the latest."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from flags import roles
from flags.api.management import ManagementView
from hygiene import selectors, services
from hygiene.api import serializers as s


class CodeReferences(ManagementView):
    @extend_schema(request=s.UploadIn, responses={201: s.UploadOut})
    def post(self, request: Request, project: str) -> Response:
        """Stores a scan of one repository at one commit. The answer names the keys that are
        unknown or archived (CI fails on them) and the references gone since the last scan."""
        proj = self.project(request, project)
        if not roles.can(request.user, "edit_flag", proj):
            raise PermissionDenied(f"You may not upload code references to {proj}.")
        data = self.valid(s.UploadIn(), request.data)
        found = [
            services.Found(r["flagKey"], r["path"], r["line"], r["context"], r["via"])
            for r in data["references"]
        ]
        user = request.user if request.user.is_authenticated else None
        result = services.upload_references(
            proj,
            repository=data["repository"],
            commit=data["commit"],
            found=found,
            user=user,
        )
        body: dict[str, Any] = dict(s.UploadOut({**result.__dict__, "count": len(found)}).data)
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: dict})  # flag key -> its references (ReferenceOut rows)
    def get(self, request: Request, project: str) -> Response:
        """The latest scan of each repository, by flag key."""
        proj = self.project(request, project)
        refs = selectors.references_by_flag(proj) or {}
        return Response(
            {
                key: [
                    {
                        "repository": r.repository,
                        "commit": r.commit,
                        "path": r.path,
                        "line": r.line,
                        "context": r.context,
                    }
                    for r in found
                ]
                for key, found in sorted(refs.items())
            }
        )
