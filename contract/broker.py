"""How a party reaches the broker: the MQTT URL grammar and TLS files, shared by gateway and hub configs.

    mqtt://HOST[:1883]      plain TCP (tests, the demo, a broker on the same host)
    mqtts://HOST[:8883]     TLS; the broker is checked against ``ca_file`` (else the system CAs), and a client
                            certificate is sent when ``cert_file``/``key_file`` are given
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator

SCHEMES = ("mqtt", "tcp", "mqtts")
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # DNS names, IPv4, compose service names


class BrokerAddress(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "mqtt://127.0.0.1:1883"
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise ValueError(f"use mqtt://HOST:PORT, or mqtts://HOST:PORT for TLS (e.g. mqtts://hub.example:8883); "
                             f"got {url!r}")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError(f"the port in {url!r} must be a number 1..65535") from None
        if not _HOST.fullmatch(parts.hostname):
            try:
                ipaddress.IPv6Address(parts.hostname)
            except ValueError:
                raise ValueError(f"the host in {url!r} is not a host name or IP address (letters, digits, '.', "
                                 f"'-', '_'; an IPv6 address in brackets)") from None
        return url

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)

    def tls_files(self) -> dict[str, str | None] | None:
        """Keyword arguments for the MQTT client's TLS parameters (ca_certs, certfile, keyfile), or None."""
        if not self.tls:
            return None
        return {"ca_certs": str(self.ca_file) if self.ca_file else None,
                "certfile": str(self.cert_file) if self.cert_file else None,
                "keyfile": str(self.key_file) if self.key_file else None}
