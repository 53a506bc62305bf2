"""The REST API: the same services, rules and roles as the pages, as JSON."""
