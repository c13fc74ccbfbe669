"""Typed reading of settings from the environment that reports every bad value at once."""

import ipaddress

import environ
from django.core.exceptions import ImproperlyConfigured


class EnvReader:
    """Wraps django-environ so that an invalid value names its variable and what was expected.

    Errors are collected instead of raised one by one, so an operator fixes a broken
    configuration in one pass; call ``raise_if_invalid()`` after reading everything.
    """

    def __init__(self, env: environ.Env):
        self.env = env
        self.errors: list[str] = []

    def _read(self, cast, name, default, expected):
        # An empty value (as in a copied .env.example) means "use the default".
        if not self.env.str(name, default="").strip():
            return default
        try:
            return cast(name, default=default)
        except (ValueError, TypeError, ImproperlyConfigured) as exc:
            raw = self.env.str(name, default="")
            self.errors.append(f"{name}={raw!r} is not valid: expected {expected} ({exc})")
            return default

    def str(self, name, default, choices=None):
        value = self._read(self.env.str, name, default, "text")
        if choices and value.lower() not in choices:
            self.errors.append(f"{name}={value!r} is not valid: expected one of {', '.join(choices)}")
            return default
        return value.lower() if choices else value

    def bool(self, name, default):
        raw = self.env.str(name, default="").strip().lower()
        if not raw:
            return default
        if raw in ("true", "1", "yes", "on"):
            return True
        if raw in ("false", "0", "no", "off"):
            return False
        self.errors.append(f"{name}={raw!r} is not valid: expected true or false")
        return default

    def int(self, name, default, minimum=None, maximum=None):
        value = self._read(self.env.int, name, default, "an integer")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            self.errors.append(f"{name}={value!r} is not valid: expected an integer {bounds}")
            return default
        return value

    def list(self, name, default):
        return self._read(self.env.list, name, default, "a comma-separated list")

    def origin_list(self, name, default):
        origins = self.list(name, default)
        for origin in origins:
            scheme, _, host = origin.partition("://")
            if scheme not in ("http", "https") or not host or "/" in host:
                self.errors.append(f"{name}={origin!r} is not valid: expected origins like https://app.example.com")
                return default
        return origins

    def network_list(self, name, default):
        """Addresses and CIDR networks (a bare address is a network of one)."""
        networks = []
        for entry in self.list(name, default):
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                self.errors.append(f"{name}={entry!r} is not valid: expected addresses or networks like 10.0.0.0/8")
                return []
        return networks

    def db_url(self, name, default):
        if not self.env.str(name, default=""):
            return default
        try:
            config = self.env.db_url(name)
        except (ValueError, ImproperlyConfigured) as exc:
            self.errors.append(f"{name} is not a valid database URL ({exc})")
            return default
        if config.get("ENGINE") not in ("django.db.backends.postgresql", "django.db.backends.sqlite3"):
            self.errors.append(f"{name} must be a postgres:// or sqlite:// URL")
            return default
        return config

    def email_url(self, name, default):
        value = self.env.str(name, default="") or default
        try:
            return environ.Env.email_url_config(value)
        except (ValueError, KeyError, ImproperlyConfigured) as exc:
            self.errors.append(f"{name}={value!r} is not a valid e-mail URL ({exc})")
            return environ.Env.email_url_config(default)

    def redis_url(self, name):
        value = self.env.str(name, default="")
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            self.errors.append(f"{name}={value!r} is not valid: expected a redis:// or rediss:// URL")
            return ""
        return value

    def raise_if_invalid(self):
        if self.errors:
            listing = "\n  - ".join(self.errors)
            raise ImproperlyConfigured(f"Invalid configuration:\n  - {listing}")
