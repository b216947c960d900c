"""Container health check: exit 0 when every URL given answers 2xx within 3 seconds.

Used by docker-compose.yml (``python /app/deploy/healthcheck.py URL...``), so the images need no
curl or wget. The collector checks its sink, since it is unhealthy exactly when it cannot write.
"""

import sys
import urllib.request


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return 200 <= resp.status < 300
    except OSError:
        return False


if __name__ == "__main__":
    urls = sys.argv[1:]
    sys.exit(0 if urls and all(healthy(u) for u in urls) else 1)
