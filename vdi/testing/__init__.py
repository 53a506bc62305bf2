"""Harness shared by the tests and the benchmarks: the portal's own processes (a Celery worker,
daphne or uvicorn) started for real, and a small RFB client. Never imported by the portal."""
