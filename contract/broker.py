"""How a party reaches the broker: the MQTT URL grammar and TLS files, shared by gateway and hub configs.

    mqtt://HOST[:1883]      plain TCP (tests, the demo, a broker on the same host)
    mqtts://HOST[:8883]     TLS; the broker is checked against ``ca_file`` (else the system CAs), and a client
                            certificate is sent when ``cert_file``/``key_file`` are given

A clustered broker (NATS with MQTT, EMQX) is a list of node URLs instead of one ``url``:

    urls = ["mqtts://mq1:8883", "mqtts://mq2:8883", "mqtts://mq3:8883"]
    url_order = "in_order"    # or "random": each client shuffles the list once, so a fleet spreads over the nodes

A client stays on the node that works and moves to the next one after a failed or lost connection (the
reconnect loop's backoff between tries; ``runtime.mqtt.BrokerList``). All nodes share one scheme and the TLS
files: a list that mixes ``mqtt://`` and ``mqtts://`` would let one plain node downgrade the link.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

SCHEMES = ("mqtt", "tcp", "mqtts")
DEFAULT_URL = "mqtt://127.0.0.1:1883"
MAX_URLS = 32
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # DNS names, IPv4, compose service names


def check_url(url: str) -> str:
    """One broker URL, or a ValueError whose text a deployer can act on."""
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


BrokerUrl = Annotated[str, AfterValidator(check_url)]


def endpoint(url: str) -> tuple[str, int]:
    """(host, port) of a checked URL (the scheme's default port when none is given)."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or (8883 if parts.scheme == "mqtts" else 1883)


class BrokerAddress(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: BrokerUrl = DEFAULT_URL
    urls: tuple[BrokerUrl, ...] = Field(default=(), max_length=MAX_URLS)  # the nodes of a clustered broker
    url_order: Literal["in_order", "random"] = "in_order"
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _one_list(self) -> BrokerAddress:
        if "url" in self.model_fields_set and "urls" in self.model_fields_set:
            raise ValueError("give either url (one broker) or urls (the nodes of a clustered broker), not both")
        if "urls" in self.model_fields_set and not self.urls:
            raise ValueError('urls is empty: list at least one broker, e.g. urls = ["mqtt://mq1:1883", '
                             '"mqtt://mq2:1883"]')
        seen: set[tuple[str, int]] = set()
        for u in self.urls:
            if endpoint(u) in seen:
                raise ValueError(f"urls lists {u!r} twice (host and port); give each broker node once")
            seen.add(endpoint(u))
        if len({urlsplit(u).scheme == "mqtts" for u in self.urls}) > 1:
            raise ValueError("urls mixes mqtt:// and mqtts://: every node of one broker takes the same scheme "
                             "(a plain node would downgrade the link)")
        return self

    @property
    def all_urls(self) -> tuple[str, ...]:
        """The broker URLs to try, in the configured order (one for a single broker)."""
        return self.urls or (self.url,)

    @property
    def endpoints(self) -> tuple[tuple[str, int], ...]:
        return tuple(endpoint(u) for u in self.all_urls)

    @property
    def shown(self) -> str:
        """The broker for logs and summaries: the URL, or the node URLs joined by commas."""
        return ",".join(self.all_urls)

    @property
    def host(self) -> str:
        return self.endpoints[0][0]

    @property
    def tls(self) -> bool:
        return urlsplit(self.all_urls[0]).scheme == "mqtts"

    @property
    def port(self) -> int:
        return self.endpoints[0][1]

    def tls_files(self) -> dict[str, str | None] | None:
        """Keyword arguments for the MQTT client's TLS parameters (ca_certs, certfile, keyfile), or None."""
        if not self.tls:
            return None
        return {"ca_certs": str(self.ca_file) if self.ca_file else None,
                "certfile": str(self.cert_file) if self.cert_file else None,
                "keyfile": str(self.key_file) if self.key_file else None}
