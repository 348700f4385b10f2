"""dozor hub: the central service.

    python -m hub --config examples/hub.toml        (or: dozor hub run --config ...)

Modules: ``config`` (TOML), ``keys`` (Ed25519 signing key), ``zones``, ``registry`` (gateways and devices),
``store`` (SQLite WAL), ``alerts`` (the engine), ``mqtt`` (connection + dispatcher), ``api`` (FastAPI),
``violations`` (the noise violations register: signed pass-by evidence, review, exports, /api/v1/noise),
``app`` (``Hub``: everything in one event loop). Errors derive from ``hub.errors.HubError``.

Extension points for other hub components:

- ``Hub(config, routers=[router])`` mounts extra FastAPI routers (e.g. the residents page);
- ``Hub(config, hooks=[fn])`` or ``hub.engine.hooks.append(fn)``: ``async fn(alert: AlertOut,
  states: list[ZoneState])`` is called on every alert change (start, all-clear, stop, cancel, expiry,
  end of the all-clear window), as a task alongside the siren commands; exceptions are logged and counted;
- ``hub.dispatcher.on("telemetry" | "event", fn)``: sync ``fn(model)`` for each validated message (the
  ingest pipeline); it must not block and must not raise (a raise is counted as ``handler_error``).
"""
