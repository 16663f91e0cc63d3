"""Container health check: GET /healthz on this machine's gunicorn; exit 0 when it answers 200.

Sends the first DJANGO_ALLOWED_HOSTS name as Host and X-Forwarded-Proto https, as the
reverse proxy would, so neither the host check nor the HTTPS redirect gets in the way.
"""

import os
import sys
import urllib.error
import urllib.request

port = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").rsplit(":", 1)[-1]
host = (os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost").split(",")[0] or "localhost").strip()
request = urllib.request.Request(  # noqa: S310 - a fixed http URL on loopback
    f"http://127.0.0.1:{port}/healthz", headers={"Host": host, "X-Forwarded-Proto": "https"}
)
try:
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        sys.exit(0 if response.status == 200 else 1)
except (urllib.error.URLError, OSError) as exc:
    print(f"unhealthy: {exc}", file=sys.stderr)
    sys.exit(1)
