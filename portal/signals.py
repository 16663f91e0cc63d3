"""Signals of the portal package that higher apps subscribe to."""

from django.dispatch import Signal

# Sent by `manage.py runserver` once the server listens, with `base_url`; each receiver returns
# lines (a list of str) to print after the server's own start-up lines (e.g. the demo users).
server_started = Signal()
