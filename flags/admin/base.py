"""What every Flagsite ModelAdmin shares: role checks on every path and saves through
flags.services, with service errors shown on the form's fields."""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from flags import roles, services
from flags.errors import ApprovalRequired, ChangeRejected, FieldError, VersionConflict
from flags.history import REASON_MAX_LENGTH
from flags.models import AuditFields
from flags.preview import describe_effect, sentence

M = TypeVar("M", bound=models.Model)
SOURCE = AuditFields.Source.ADMIN


def user_of(request: HttpRequest) -> User | AnonymousUser:
    user = request.user
    assert isinstance(user, User | AnonymousUser)
    return user


class ServiceForm(forms.ModelForm):  # type: ignore[type-arg]
    """A model form whose save happens in ``apply`` (a service call) once it validates.

    Errors from the service land on the matching field, or on the form when they do not
    belong to a field shown here; a version conflict keeps the user's input and moves the
    expected version on, so saving again is a deliberate overwrite.
    """

    request: ClassVar[HttpRequest]
    reason = forms.CharField(
        required=False,
        max_length=REASON_MAX_LENGTH,
        widget=forms.TextInput(attrs={"size": 80}),
        help_text="Why: recorded in the history. Required for changes that affect production.",
    )
    expected_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and hasattr(self.instance, "version"):
            self.fields["expected_version"].initial = self.instance.version
        self.result: Any = None

    @property
    def actor(self) -> User:
        user = self.request.user
        assert isinstance(user, User)
        return user

    def apply(self, changes: dict[str, Any], reason: str) -> Any:
        """Writes what is not an evaluation change (creates, settings); see ``change``."""
        raise NotImplementedError

    def change(self, changes: dict[str, Any]) -> services.Change | None:
        """The evaluation change an edit of an existing object stands for, if any: it goes
        through the write pipeline, which applies it, proposes it for approval, or (with the
        Preview button) only says what it would alter."""
        return None

    def _submit(self, change: services.Change, reason: str) -> Any:
        preview = "_preview" in self.data
        mode = services.Mode.DRY_RUN if preview else services.Mode.AUTO
        outcome = services.submit(
            [change], actor=self.actor, source=SOURCE, reason=reason, mode=mode
        )
        if preview:
            environments = [describe_effect(e) for e in outcome.effects]
            self.add_error(None, f"Preview only, nothing was saved. {sentence(environments)}")
            for env in environments:
                for f in env["flags"]:
                    impact = f" ({f['impact']})" if f.get("impact") else ""
                    self.add_error(
                        None,
                        f"{env['environment']} · {f['flag']}{impact}: now {f['before']}; "
                        f"after {f['after']}"
                        + (" — needs approval" if env["needsApproval"] else ""),
                    )
            return None
        if outcome.change_request is not None:
            self.request._flags_change_request = outcome.change_request  # type: ignore[attr-defined]
            return self.instance
        return getattr(change, "target", None)

    def changes(self) -> dict[str, Any]:
        model_fields = {f.name for f in self._meta.model._meta.get_fields()}
        names = [n for n in self._meta.fields or () if n in model_fields]
        return {name: self.cleaned_data[name] for name in names if name in self.cleaned_data}

    def _post_clean(self) -> None:
        super()._post_clean()  # type: ignore[misc]
        if not self.errors:
            self._apply()
        if self.errors and self.instance.pk is not None:
            # construct_instance copied the rejected input onto the instance; read-only
            # fields (version, "at a glance" summaries) must show what is saved, not it.
            self.instance.refresh_from_db()

    def _apply(self) -> None:
        reason = self.cleaned_data.get("reason") or ""
        try:
            changes = self.changes()
            change = self.change(changes) if self.instance.pk is not None else None
            if change is not None:
                self.result = self._submit(change, reason)
            else:
                self.result = self.apply(changes, reason)
        except ChangeRejected as exc:
            for error in exc.errors:
                self._add_service_error(error)
        except VersionConflict as exc:
            self.add_error(
                None,
                f"Someone else saved this while you were editing it (it is now version "
                f"{exc.current_version}). Your changes were NOT saved and are still in the form "
                f"below: compare them with the current version (open it in a new tab), then "
                f"save again to apply them on top of it.",
            )
            data = self.data.copy()  # type: ignore[attr-defined]
            data["expected_version"] = str(exc.current_version)
            self.data = data
        except ApprovalRequired as exc:
            self.add_error(None, str(exc))
        except PermissionDenied as exc:
            self.add_error(None, str(exc) or "You may not make this change.")
        else:
            if self.result is not None and isinstance(self.result, models.Model):
                self.instance = self.result

    def _add_service_error(self, error: FieldError) -> None:
        name = error.field
        message = f"{error.path}: {error.message}" if error.path != name else error.message
        if name is not None and name in self.fields:
            self.add_error(name, message)
        else:
            self.add_error(None, f"{error.path or 'change'}: {error.message}")


class RoleAdmin(admin.ModelAdmin[M], Generic[M]):
    """Permission hooks mapped onto flags.roles; subclasses say which action each needs."""

    view_action: roles.Action = "view"
    change_action: roles.Action = "edit_flag"
    add_action: roles.Action | None = "edit_flag"
    delete_action: roles.Action | None = None

    def has_module_permission(self, request: HttpRequest) -> bool:
        return roles.has_any_role(user_of(request))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        user = user_of(request)
        if obj is None:
            return roles.has_any_role(user)
        return roles.can(user, self.view_action, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        user = user_of(request)
        if obj is None:
            return roles.has_any_role(user)
        return roles.can(user, self.change_action, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        if self.add_action is None:
            return False
        return roles.projects_with(user_of(request), self.add_codename()).exists()

    def add_codename(self) -> str:
        return {
            "edit_flag": "edit_project_flags",
            "edit_segment": "edit_project_segments",
            "manage": "own_project",
        }.get(self.add_action or "", "own_project")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self.delete_action is None:
            return False
        if obj is None:
            return roles.has_any_role(user_of(request))
        return roles.can(user_of(request), self.delete_action, obj)

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        # Someone with no role at all is refused outright (403) on every object path, rather
        # than sent to the index as if the object did not exist.
        if not roles.has_any_role(user_of(request)):
            raise PermissionDenied
        return super().get_object(request, object_id, from_field)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    def save_model(self, request: HttpRequest, obj: M, form: Any, change: bool) -> None:
        """The form's service call saved it already (see ServiceForm)."""

    def response_change(self, request: HttpRequest, obj: M) -> HttpResponse:
        change_request = getattr(request, "_flags_change_request", None)
        if change_request is not None:
            messages.info(
                request,
                f"This change needs approval ({sentence(change_request.preview)}): change "
                f"request #{change_request.pk} was submitted; it applies once someone else "
                "approves it.",
            )
            return HttpResponseRedirect(
                reverse("admin:flags_changerequest_change", args=[change_request.pk])
            )
        return super().response_change(request, obj)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)
