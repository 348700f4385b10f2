"""Prometheus metrics on a per-hub CollectorRegistry (never the global one), so tests can run several hubs."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class HubMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        p = "dozor_hub_"
        self.mqtt_messages = Counter(p + "mqtt_messages", "MQTT messages received", ["channel"], registry=r)
        self.malformed = Counter(p + "malformed_messages", "Malformed MQTT payloads dropped",
                                 ["channel", "reason"], registry=r)
        self.mqtt_connects = Counter(p + "mqtt_connects", "Successful MQTT connections", ["connection"],
                                     registry=r)
        self.mqtt_disconnects = Counter(p + "mqtt_disconnects", "Lost MQTT connections", ["connection"],
                                        registry=r)
        self.mqtt_broker_switches = Counter(p + "mqtt_broker_switches", "Moves to the next node of a clustered "
                                            "broker after a failed or lost connection", ["connection"], registry=r)
        self.retained_refreshes = Counter(p + "retained_refreshes", "Retained hub and zone states published again "
                                          "on a clustered broker", registry=r)
        self.publish_errors = Counter(p + "publish_errors", "MQTT publishes that failed", ["kind"], registry=r)
        self.commands_sent = Counter(p + "commands_sent", "Signed commands published", ["act"], registry=r)
        self.command_retries = Counter(p + "command_retries", "Commands re-sent with a new jti", registry=r)
        self.held_back = Counter(p + "control_messages_held", "Gateway messages on the control connection held "
                                 "back while a phase's commands went out (deferred), or handled at once because "
                                 "the queue was full (overflow): hub/sendfirst.py", ["outcome"], registry=r)
        self.acks = Counter(p + "acks", "Acks applied", ["stage"], registry=r)
        self.acks_ignored = Counter(p + "acks_ignored", "Acks that matched nothing live", ["reason"], registry=r)
        self.escalations = Counter(p + "alert_escalations", "Devices that failed, were rejected or stayed "
                                   "unreachable", ["outcome", "reason"], registry=r)
        self.alerts = Counter(p + "alerts", "Alerts started", ["mode", "signal"], registry=r)
        self.alert_ops = Counter(p + "alert_operations", "Alert updates", ["op"], registry=r)
        self.alert_refusals = Counter(p + "alert_refusals", "Alert operations refused by the lifecycle or the "
                                      "overlap policy (HTTP 409)", ["op"], registry=r)
        self.commands_withheld = Counter(p + "commands_withheld", "Device targets not sent because another alert "
                                         "holds the device (overlap policy)", registry=r)
        self.break_glass = Counter(p + "alert_break_glass", "Alerts sent by one supervisor alone (break glass)",
                                   ["mode", "signal"], registry=r)
        self.confirm = Histogram(p + "confirm_seconds", "Alert creation to sounding/playing ack (hub clock)",
                                 buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 3, 5, 10, 30), registry=r)
        self.hook_errors = Counter(p + "hook_errors", "Alert hooks that raised", ["hook"], registry=r)
        self.loop_stalls = Counter(p + "loop_stalls", "Times the hub's event loop did not run for over 1 s "
                                   "(heartbeat timeouts discount them)", registry=r)
        self.gateway_events = Counter(p + "gateway_transitions", "Gateway online/offline transitions",
                                      ["state", "reason"], registry=r)
        self.stale_states = Counter(p + "stale_gateway_states", "Gateway states ignored (lower session)",
                                    registry=r)
        self.gateways = Gauge(p + "gateways", "Gateways by state", ["state"], registry=r)
        self.ingest = Counter(p + "ingest_messages", "Telemetry/event messages handed to ingest hooks",
                              ["channel"], registry=r)
        self.api_auth_failures = Counter(p + "api_auth_failures", "API calls refused (401)", registry=r)
        self.api_bad_requests = Counter(p + "api_bad_requests", "API calls with invalid input", ["code"],
                                        registry=r)
        self.unverified = Counter(p + "gateway_messages_unverified", "Gateway messages ignored: unsigned, not "
                                  "enrolled, bad signature, replayed or implausible session", ["channel", "reason"],
                                  registry=r)
        self.task_failures = Counter(p + "task_failures", "Long-lived hub tasks that failed (then restarted by the "
                                     "supervisor, runtime/supervise.py)", ["task"], registry=r)
        self.store_errors = Counter(p + "store_errors", "SQLite write failures", registry=r)
        # identities, audit, API hardening (hub/identity, hub/audit, hub/limits.py)
        self.api_auth_refusals = Counter(p + "api_auth_refusals", "API calls refused by authentication or role",
                                         ["reason"], registry=r)
        self.api_rate_limited = Counter(p + "api_rate_limited", "API calls answered 429", ["what"], registry=r)
        self.api_body_too_large = Counter(p + "api_body_too_large", "Request bodies refused (413) before being read",
                                          registry=r)
        self.audit_records = Counter(p + "audit_records", "Audit chain records appended", ["action"], registry=r)
        self.audit_head_seq = Gauge(p + "audit_head_seq", "Sequence number of the newest signed audit chain head",
                                    registry=r)
        self.audit_head_ts = Gauge(p + "audit_head_timestamp_seconds", "When the newest audit head was signed",
                                   registry=r)
        self.audit_head = Gauge(p + "audit_head", "The newest signed audit chain head (value: seq)",
                                ["hash", "kid"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class StateSizes:
    """``dozor_hub_state_items{what}``: how many items each bounded in-memory structure of the hub holds (alerts,
    command ids, telemetry tail, gateways, nodes, ...), read at scrape time from ``sizes()``. A soak shows them
    level off; one that keeps growing is a leak."""

    def __init__(self, sizes: Callable[[], dict[str, int]]) -> None:
        self.sizes = sizes

    def describe(self):
        return []

    def collect(self):
        family = GaugeMetricFamily("dozor_hub_state_items", "Items held in memory, by structure", labels=["what"])
        for what, n in sorted(self.sizes().items()):
            family.add_metric([what], float(n))
        yield family


class IngestCollector:
    """Prometheus view of the ingest counters (dozor_hub_telemetry_ingest_total{name}) and its queues (gauges)."""

    GAUGES = ("buffered_lines", "acks_waiting", "spool.pending_lines", "store_up", "spool.last_write_ms",
              "ingest.last_batch_ms")

    def __init__(self, stats: Callable[[], dict[str, int]]) -> None:
        self.stats = stats

    def describe(self):
        return []

    def collect(self):
        counters = CounterMetricFamily("dozor_hub_telemetry_ingest", "Telemetry ingest and spool counters", labels=["name"])
        gauges = GaugeMetricFamily("dozor_hub_telemetry_queue", "Telemetry lines and acks waiting; store_up 1/0",
                                   labels=["name"])
        for name, value in sorted(self.stats().items()):
            (gauges if name in self.GAUGES else counters).add_metric([name], float(value))
        yield counters
        yield gauges
