"""What `modelreg login` remembers for this user: the server and the API key that works there.

The file is `$MODELREG_CONFIG_DIR/settings`, else `$XDG_CONFIG_HOME/modelreg/settings`, else
`~/.config/modelreg/settings`; an INI file readable by its owner only (mode 600), holding a secret.

Where the client takes its server and key from, first found wins: the arguments of `modelreg.init` /
`Api` / `Transport`, then MODELREG_URL / MODELREG_API_KEY, then this file. The stored key is sent only
to the server it was stored for, so pointing a script at another server never leaks it there.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path

SECTION = "default"


def settings_path() -> Path:
    if folder := os.environ.get("MODELREG_CONFIG_DIR"):
        return Path(folder) / "settings"
    config_home = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config_home) / "modelreg" / "settings"


@dataclass(frozen=True)
class LoginSettings:
    url: str
    api_key: str

    def key_for(self, url: str) -> str | None:
        """The stored key, if `url` is the server it belongs to."""
        return self.api_key if url.rstrip("/") == self.url.rstrip("/") else None


def load_login() -> LoginSettings | None:
    path = settings_path()
    if not path.is_file():
        return None
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path, encoding="utf-8")
    if not parser.has_option(SECTION, "url") or not parser.has_option(SECTION, "api_key"):
        return None
    return LoginSettings(parser.get(SECTION, "url"), parser.get(SECTION, "api_key"))


def save_login(settings: LoginSettings) -> Path:
    """Write the file owner-only from its first byte (never world-readable, not even for a moment)."""
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    parser = configparser.ConfigParser(interpolation=None)
    parser[SECTION] = {"url": settings.url.rstrip("/"), "api_key": settings.api_key}
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through os.open
    with os.fdopen(descriptor, "w", encoding="utf-8") as f:
        parser.write(f)
    return path
