"""User intent goes through these functions: check access, claim state, audit, enqueue."""
