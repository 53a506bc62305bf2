"""What the Celery worker does on its host: the only Django code that talks to libvirt."""
