"""django-axes lock-out without a denial of service (AXES_HANDLER).

Failures are counted per username *at* an address (AXES_FAILURE_LIMIT): someone guessing a
user's password from one address locks that user out from that address only, never from
every other address, so an attacker cannot lock a colleague out by typing wrong passwords. And
per address alone (AXES_ADDRESS_FAILURE_LIMIT, higher): an address trying many usernames is
held back, for every username, and only that address. A successful sign-in clears that user's
failures at that address, not the address's count of guesses at other users.

Needs AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"] (settings.base).
"""

from __future__ import annotations

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from django.conf import settings
from django.db.models import Sum


def _failures(attempts) -> int:
    return attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0


class UserAtAddressHandler(AxesDatabaseHandler):
    def get_failures(self, request, credentials=None) -> int:
        user_at_address, address = self.get_user_attempts(request, credentials)
        failures = _failures(user_at_address)
        if _failures(address) >= settings.AXES_ADDRESS_FAILURE_LIMIT:
            # Held back as an address: locked whoever signs in from it.
            return max(failures, get_failure_limit(request, credentials))
        return failures

    def reset_user_attempts(self, request, credentials=None) -> int:
        user_at_address, _ = self.filter_user_attempts(request, credentials)
        count, _ = user_at_address.delete()
        return count
