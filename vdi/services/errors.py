"""What a service refuses with; views turn these into messages or HTTP statuses."""

from __future__ import annotations


class ServiceError(Exception):
    """A request that can't be done; the message is safe to show to the user."""


class AccessDenied(ServiceError):
    pass


class NoCapacity(ServiceError):
    pass


class NoHostForNetwork(ServiceError):
    """No enabled host offers the network a pool's desktops need."""


class NotReady(ServiceError):
    pass
