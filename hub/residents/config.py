"""Residents configuration and one call that wires it: channels, notifier and router for the hub to mount.

    residents = build_residents(ResidentsConfig.model_validate(cfg["residents"]), zones, token=api_token)
    app.include_router(residents.router)
    await residents.start()                           # spawns Web Push workers before the first alert
    alerts.add_hook(residents.notifier.on_zone_state)  # called in parallel with the siren commands
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from py_vapid import Vapid02
from pydantic import BaseModel, ConfigDict, Field

from hub.residents.channels import (
    Channel,
    NtfyChannel,
    SubscriptionStore,
    TelegramChannel,
    VapidSigner,
    WebhookChannel,
    WebhookEndpoint,
    WebPushChannel,
)
from hub.residents.errors import ConfigError
from hub.residents.geo import ZoneInfo, parse_zones
from hub.residents.guidance import GuidanceBook, GuidanceConfig
from hub.residents.history import AlertDocs, History
from hub.residents.notifier import ResidentNotifier
from hub.residents.shelters import Shelter, load_shelters
from hub.residents.web import DEFAULT_PUSH_HOSTS, PromoteHook, create_router


class _C(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Limits(_C):
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    retries: int = Field(default=2, ge=0, le=10)


class WebPushConfig(Limits):
    subject: str = Field(pattern=r"^(mailto:|https://)")
    vapid_key_file: Path  # PEM; created (0600) on first start when missing
    subscriptions_db: Path | None = None  # SQLite (WAL); None keeps subscriptions in memory
    ttl_s: int = Field(default=3600, ge=0, le=86400)
    workers: int = Field(default=2, ge=1, le=64)
    concurrency: int = Field(default=256, ge=1, le=10000)
    push_hosts: list[str] | None = Field(default_factory=lambda: list(DEFAULT_PUSH_HOSTS))  # None: any host


class NtfyConfig(Limits):
    base_url: str
    topic_prefix: str = "dozor-"
    topics: dict[str, str] = Field(default_factory=dict)
    exercise_suffix: str | None = "-exercise"
    token: str | None = None


class TelegramConfig(Limits):
    bot_token: str = Field(min_length=5)
    chats: dict[str, str | int]
    exercise_chats: dict[str, str | int] = Field(default_factory=dict)
    base_url: str = "https://api.telegram.org"


class WebhookConfig(Limits):
    url: str
    secret: str = Field(min_length=16)
    zones: list[str] | None = None
    exercise: bool = False


class ResidentsConfig(_C):
    public_url: str = Field(description="the resident page's public base URL (links in notifications)")
    sender: str = "dozor"  # CAP <sender>
    shelters_file: Path | None = None
    webpush: WebPushConfig | None = None
    ntfy: NtfyConfig | None = None
    telegram: TelegramConfig | None = None
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    timezone: str = "Europe/Kyiv"  # times on the page (start, end, history)
    heartbeat_s: float = Field(default=15.0, gt=0, le=120)  # live stream heartbeat; one missed = "connection lost"
    guidance: GuidanceConfig = Field(default_factory=GuidanceConfig)  # per-signal texts and shelter types


def load_vapid(cfg: WebPushConfig) -> VapidSigner:
    path = cfg.vapid_key_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        v = Vapid02()
        v.generate_keys()
        v.save_key(str(path))
        os.chmod(path, 0o600)
    try:
        return VapidSigner.from_pem(path.read_bytes(), cfg.subject)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read VAPID key: {exc.strerror}") from None


@dataclass
class Residents:
    notifier: ResidentNotifier
    router: APIRouter
    subscriptions: SubscriptionStore | None
    webpush: WebPushChannel | None
    shelters: list[Shelter]

    async def start(self) -> None:
        if self.webpush is not None:
            await self.webpush.start()

    async def aclose(self) -> None:
        await self.notifier.aclose()
        if self.subscriptions is not None:
            self.subscriptions.close()


def build_residents(cfg: ResidentsConfig, zones: Sequence[ZoneInfo | Mapping[str, Any]], *,
                    token: str | None, on_promote: PromoteHook | None = None,
                    alert_docs: AlertDocs | None = None, identity: bool = False,
                    subscriptions_db: Any = None) -> Residents:
    """``alert_docs``: the hub store's persisted alert documents, for the page's history. ``identity``: operator
    routes declare their roles through hub.identity (in the hub) instead of comparing ``token``.
    ``subscriptions_db``: the hub state backend's ``push`` Database (PostgreSQL) in place of
    ``[residents.webpush] subscriptions_db``."""
    zinfo = [z if isinstance(z, ZoneInfo) else parse_zones([z])[0] for z in zones]
    shelters = load_shelters(cfg.shelters_file, zinfo) if cfg.shelters_file else []
    channels: list[Channel] = []
    subs: SubscriptionStore | None = None
    webpush: WebPushChannel | None = None
    signer: VapidSigner | None = None
    if cfg.webpush is not None:
        subs = SubscriptionStore(subscriptions_db if subscriptions_db is not None else cfg.webpush.subscriptions_db)
        signer = load_vapid(cfg.webpush)
        webpush = WebPushChannel(subs, signer, ttl_s=cfg.webpush.ttl_s, workers=cfg.webpush.workers,
                                 concurrency=cfg.webpush.concurrency, timeout_s=cfg.webpush.timeout_s,
                                 retries=cfg.webpush.retries)
        channels.append(webpush)
    if cfg.ntfy is not None:
        n = cfg.ntfy
        channels.append(NtfyChannel(n.base_url, public_url=cfg.public_url, topic_prefix=n.topic_prefix,
                                    topics=n.topics, exercise_suffix=n.exercise_suffix, token=n.token,
                                    timeout_s=n.timeout_s, retries=n.retries))
    if cfg.telegram is not None:
        t = cfg.telegram
        channels.append(TelegramChannel(t.bot_token, t.chats, exercise_chats=t.exercise_chats,
                                        public_url=cfg.public_url, base_url=t.base_url, timeout_s=t.timeout_s,
                                        retries=t.retries))
    if cfg.webhooks:
        w0 = cfg.webhooks[0]
        channels.append(WebhookChannel(
            [WebhookEndpoint(w.url, w.secret.encode(), frozenset(w.zones) if w.zones is not None else None,
                             w.exercise) for w in cfg.webhooks], timeout_s=w0.timeout_s, retries=w0.retries))
    notifier = ResidentNotifier(channels)
    router = create_router(notifier=notifier, zones=zinfo, shelters=shelters, subscriptions=subs,
                           vapid_public_key=signer.public_key_b64 if signer else None, token=token,
                           sender=cfg.sender, public_url=cfg.public_url.rstrip("/"), on_promote=on_promote,
                           push_hosts=cfg.webpush.push_hosts if cfg.webpush else DEFAULT_PUSH_HOSTS,
                           guidance=GuidanceBook(cfg.guidance), history=History(alert_docs),
                           timezone=cfg.timezone, keepalive_s=cfg.heartbeat_s, identity=identity)
    return Residents(notifier, router, subs, webpush, shelters)
