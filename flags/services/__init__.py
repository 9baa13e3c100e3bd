"""Every write to projects, environments, flags, flag states, segments and change requests.

Everything that can alter evaluation goes through one pipeline (flags.services.pipeline):
validate, build every environment's candidate ruleset, diff, authorize per changed
environment (permission, approval rule, reason), write with history on every affected flag,
publish on commit. The functions here are the named entry points callers use (admin, API,
automation); they raise ChangeRejected, VersionConflict, ApprovalRequired and PermissionDenied.
Error paths in ChangeRejected are relative to the changed object (see errors.FieldError).
"""

from django.core.exceptions import PermissionDenied

from flags.errors import ApprovalRequired, ChangeRejected, FieldError, VersionConflict
from flags.services.base import MAX_REASON_LENGTH, Actor, ActorLike, Source, as_actor
from flags.services.changes import (
    apply_change,
    approve_change,
    load,
    may_review,
    register_kind,
    reject_change,
)
from flags.services.definitions import (
    archive_edit,
    archive_flag,
    archive_many,
    create_flag,
    flag_revert_changes,
    flag_snapshot,
    revert_flag,
    update_flag,
)
from flags.services.objects import (
    ARCHIVE,
    FLAG,
    FLAG_FIELDS,
    SEGMENT,
    SEGMENT_FIELDS,
    STATE,
    STATE_FIELDS,
    Create,
    DeleteSegment,
    Edit,
)
from flags.services.pipeline import Authority, Change, EnvironmentEffect, Mode, Outcome
from flags.services.projects import (
    DEFAULT_ENVIRONMENTS,
    ENVIRONMENT_FIELDS,
    create_environment,
    create_project,
    update_environment,
    update_project,
)
from flags.services.revert import revert_changes_of, revert_edit
from flags.services.segments import (
    create_segment,
    delete_segment,
    revert_segment,
    segment_revert_changes,
    segment_snapshot,
    update_segment,
)
from flags.services.states import (
    emergency_edit,
    get_state,
    kill_flag,
    kill_many,
    request_change,
    revert_changes,
    revert_flag_state,
    serve_now,
    state_snapshot,
    update_flag_state,
)
from flags.services.submit import submit

__all__ = [
    "ARCHIVE",
    "DEFAULT_ENVIRONMENTS",
    "ENVIRONMENT_FIELDS",
    "FLAG",
    "FLAG_FIELDS",
    "MAX_REASON_LENGTH",
    "SEGMENT",
    "SEGMENT_FIELDS",
    "STATE",
    "STATE_FIELDS",
    "Actor",
    "ActorLike",
    "ApprovalRequired",
    "Authority",
    "Change",
    "ChangeRejected",
    "Create",
    "DeleteSegment",
    "Edit",
    "EnvironmentEffect",
    "FieldError",
    "Mode",
    "Outcome",
    "PermissionDenied",
    "Source",
    "VersionConflict",
    "apply_change",
    "approve_change",
    "archive_edit",
    "archive_flag",
    "archive_many",
    "as_actor",
    "create_environment",
    "create_flag",
    "create_project",
    "create_segment",
    "delete_segment",
    "emergency_edit",
    "flag_revert_changes",
    "flag_snapshot",
    "get_state",
    "kill_flag",
    "kill_many",
    "load",
    "may_review",
    "register_kind",
    "reject_change",
    "request_change",
    "revert_changes",
    "revert_changes_of",
    "revert_edit",
    "revert_flag",
    "revert_flag_state",
    "revert_segment",
    "segment_revert_changes",
    "segment_snapshot",
    "serve_now",
    "state_snapshot",
    "submit",
    "update_environment",
    "update_flag",
    "update_flag_state",
    "update_project",
    "update_segment",
]
