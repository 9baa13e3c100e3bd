"""The Flagsite admin: every path checks flags.roles and saves through flags.services."""

from flags.admin import contexts, flag, other, state  # noqa: F401 - registers the ModelAdmins
