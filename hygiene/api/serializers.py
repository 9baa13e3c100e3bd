"""Code reference upload payloads (camelCase, like the rest of the management API)."""

# ruff: noqa: N815 - the API speaks camelCase
from __future__ import annotations

from typing import Any

from rest_framework import serializers


class ReferenceIn(serializers.Serializer[Any]):
    flagKey = serializers.CharField(max_length=100)
    path = serializers.CharField(max_length=1000)
    line = serializers.IntegerField(min_value=1, max_value=2**31 - 1)  # the column is a 32-bit int
    context = serializers.CharField(  # type: ignore[assignment]
        max_length=2000, allow_blank=True, default=""
    )
    via = serializers.CharField(max_length=40, allow_blank=True, default="")


class UploadIn(serializers.Serializer[Any]):
    repository = serializers.CharField(max_length=300)
    commit = serializers.CharField(max_length=100)
    references = ReferenceIn(many=True, max_length=100_000)  # type: ignore[call-arg]


class ReferenceOut(serializers.Serializer[Any]):
    flagKey = serializers.CharField(source="flag_key")
    path = serializers.CharField()
    line = serializers.IntegerField()
    context = serializers.CharField()  # type: ignore[assignment]
    via = serializers.CharField()


class UploadOut(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="upload.pk")
    repository = serializers.CharField(source="upload.repository")
    commit = serializers.CharField(source="upload.commit")
    count = serializers.IntegerField()
    unknown = serializers.ListField(child=serializers.CharField())
    archived = serializers.ListField(child=serializers.CharField())
    removed = ReferenceOut(many=True)
