"""The evaluation debugger page ("why does this context get that?") and its form."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet
from django.http import HttpRequest

from flags import debugger, roles
from flags.models import Flag, SavedContext

PLACEHOLDER = "plan=free\ncountry=GB"


class DebuggerForm(forms.Form):
    flag = forms.ModelChoiceField(queryset=Flag.objects.none(), required=True)
    saved = forms.ModelChoiceField(
        queryset=SavedContext.objects.none(), required=False, label="Saved test context",
        help_text="Its attributes are used; the fields below add to them or override them.",
    )  # fmt: skip
    targeting_key = forms.CharField(required=False, label="User id (targetingKey)")
    account_id = forms.CharField(required=False, label="Account id (accountId)")
    attributes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60, "placeholder": PLACEHOLDER}),
        help_text="One name=value a line (numbers and true/false are read as such), "
        "or a JSON object.",
    )

    def __init__(self, *args: Any, user: User | AnonymousUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        projects = roles.visible_projects(user)
        flags: QuerySet[Flag] = Flag.objects.filter(project__in=projects, archived=False)
        self.fields["flag"].queryset = flags.order_by("key")  # type: ignore[attr-defined]
        saved = SavedContext.objects.filter(project__in=projects)
        self.fields["saved"].queryset = saved  # type: ignore[attr-defined]
        self.context: dict[str, Any] = {}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        saved: SavedContext | None = data.get("saved")
        flag: Flag | None = data.get("flag")
        if saved is not None and flag is not None and saved.project_id != flag.project_id:
            self.add_error("saved", "This saved context belongs to another project.")
        context, errors = debugger.parse_context(
            data.get("targeting_key", ""), data.get("account_id", ""), data.get("attributes", "")
        )
        for error in errors:
            self.add_error(error.field, error.message)
        self.context = {**(saved.context if saved else {}), **context}
        return data


def debugger_context(
    request: HttpRequest, user: User | AnonymousUser, flag: Flag | None
) -> dict[str, Any]:
    """Template context of the debugger: the form and, once submitted, each environment's answer."""
    submitted = "flag" in request.GET or "debug" in request.GET
    data = request.GET.copy() if submitted else None
    if data is not None and flag is not None and not data.get("flag"):
        data["flag"] = str(flag.pk)
    form = DebuggerForm(data, user=user, initial={"flag": flag.pk if flag else None})
    results: list[debugger.EnvironmentResult] = []
    if data is not None and form.is_valid():
        chosen: Flag = form.cleaned_data["flag"]
        if roles.can(user, "view", chosen):
            results = debugger.debug_flag(chosen, form.context, user)
    return {
        "debug_form": form,
        "debug_results": results,
        "debug_context": json.dumps(form.context, sort_keys=True, default=str),
    }
