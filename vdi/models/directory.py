"""Group memberships a directory (LDAP, Active Directory, OpenID Connect) gave an account."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models


class DirectoryMembership(models.Model):
    """The account is in the group because its directory said so at its last sign-in.

    Only these memberships are taken away when the directory stops asserting them: groups an
    administrator gave by hand are the administrator's to remove."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="directory_memberships")
    group = models.ForeignKey(Group, on_delete=models.CASCADE,
                              related_name="directory_memberships")
    source = models.CharField(max_length=40, help_text="ldap, or oidc:<provider id>.")
    directory_group = models.CharField(max_length=255,
                                       help_text="The group's name in the directory.")
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "group", "source"],
                                               name="one_directory_membership")]

    def __str__(self) -> str:
        return f"{self.user} in {self.group} (from {self.source})"
