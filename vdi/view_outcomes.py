"""How the pages that ask a service for something say how it went."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.urls import reverse

from vdi.services.errors import AccessDenied, ServiceError
from vdi.state import TransitionRefused


def asked(request: HttpRequest, call: Callable[[], object], words: str, back_to: str,
          pk: int | None) -> HttpResponseRedirect:
    """Run ``call``; say ``words``, or why it was refused; go back to the page ``back_to``
    of desktop ``pk``.
    Someone who may not ask finds nothing (404), as on the page itself."""
    try:
        call()
    except AccessDenied:
        raise Http404("No such desktop.") from None
    except (ServiceError, TransitionRefused) as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, words)
    return HttpResponseRedirect(reverse(back_to, args=[pk]))
