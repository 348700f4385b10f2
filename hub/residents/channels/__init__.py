"""Resident notification channels. Each is async, with per-channel timeouts, retries and counters."""

from hub.residents.channels.base import Channel, ChannelStats
from hub.residents.channels.ntfy import NtfyChannel
from hub.residents.channels.telegram import TelegramChannel
from hub.residents.channels.webhook import WebhookChannel, WebhookEndpoint
from hub.residents.channels.webpush import SubscriptionStore, VapidSigner, WebPushChannel

__all__ = ["Channel", "ChannelStats", "NtfyChannel", "SubscriptionStore", "TelegramChannel",
           "VapidSigner", "WebPushChannel", "WebhookChannel", "WebhookEndpoint"]
