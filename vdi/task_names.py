"""The names of the Celery tasks, shared by the web tier (which sends by name) and the worker
(which defines them). The web tier never imports ``vdi.tasks``."""

DESKTOP_ACTION = "vdi.desktop_action"
MAINTAIN_POOLS = "vdi.maintain_pools"
ENFORCE_POLICIES = "vdi.enforce_policies"
PURGE_CONSOLE_TICKETS = "vdi.purge_console_tickets"
RECONCILE_HOSTS = "vdi.reconcile_hosts"
RECONCILE_HOST = "vdi.reconcile_host"
PURGE_HISTORY = "vdi.purge_history"
PURGE_RETIRED_VERSIONS = "vdi.purge_retired_versions"
REMOVE_VERSION_FILES = "vdi.remove_version_files"
FLUSH_CONSOLE_REFUSALS = "vdi.flush_console_refusals"
