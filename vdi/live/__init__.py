"""Live pages: state changes pushed over a websocket (``/ws/live/``) as they happen.

A change names what changed (a desktop, by id); the page then fetches the part it shows,
once. Nothing polls. Groups: one per user (their desktops), one for operators who see every
desktop, one per pool (its operators)."""
