"""What a job may name as its Docker image: a reference, never something `docker run` reads as an option."""

from __future__ import annotations

import re

# registry/name:tag or name@sha256:digest; the first character is never "-".
IMAGE_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,499}")
