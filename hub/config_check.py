"""`dozor hub check-config FILE`: every mistake in a hub config at once, with key paths and line numbers.

Checks, in one pass: TOML syntax; every section and key against the config models (unknown keys rejected in
every section, wrong types, out-of-range values); the cross-field rules of ``parse_config``; the zones file;
the shelters file (each shelter names a zone the zones file has); the MQTT key files (present, not readable by
group or others); the hub's signing keys in its state dir, when present (not readable by group or others).
Nothing is created or contacted: it runs on any machine with the config.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from hub.config import HubConfig, inline_secrets, parse_config
from hub.errors import HubError
from hub.keys import KEY_FILE, RING_DIR
from runtime.configcheck import Problem, explain, line_index, locate, toml_syntax_problem, vocabulary
from runtime.keyfiles import KeyFileError, check_private, loose_mode


def check_config(path: Path) -> tuple[HubConfig | None, list[Problem]]:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [Problem(file, "", f"cannot read the file: {exc.strerror or exc}")]
    except UnicodeDecodeError:
        return None, [Problem(file, "", "the file is not UTF-8 text")]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [toml_syntax_problem(file, exc)]
    index = line_index(text)
    if "source" in data:
        return None, [Problem(file, "source", "unknown key", locate(index, "source"))]
    try:
        HubConfig.model_validate(data)
    except ValidationError as exc:
        return None, explain(exc, file=file, index=index, words=vocabulary(HubConfig))
    try:
        cfg = parse_config(data, base=path.resolve().parent, source=file)
    except HubError as exc:
        return None, [Problem(file, "", str(exc).removeprefix(f"{file}: "))]
    cfg = cfg.model_copy(update={"source": path})
    return cfg, _files(cfg, file, index)


def _files(cfg: HubConfig, file: str, index: dict[str, int]) -> list[Problem]:
    from hub.residents.geo import parse_zones
    from hub.residents.shelters import load_shelters
    from hub.zones import Zones

    out: list[Problem] = []

    def add(key: str, msg: str) -> None:
        out.append(Problem(file, key, msg, locate(index, key)))

    zones = None
    try:
        zones = Zones.load(cfg.hub.zones)
    except HubError as exc:
        add("hub.zones", str(exc))
    if cfg.residents is not None and cfg.residents.shelters_file is not None and zones is not None:
        zinfo = parse_zones([{"id": z.id, "name": z.name or z.id,
                              "polygon": z.polygon.model_dump(mode="json") if z.polygon is not None else None}
                             for z in zones])
        try:
            load_shelters(cfg.residents.shelters_file, zinfo)
        except HubError as exc:
            add("residents.shelters_file", str(exc))
    m = cfg.mqtt
    for key, p in (("mqtt.ca_file", m.ca_file), ("mqtt.cert_file", m.cert_file),
                   ("mqtt.ingest_cert_file", m.ingest_cert_file)):
        if p is not None and not p.is_file():
            add(key, f"{p} does not exist")
    for key, p in (("hub.tls_cert_file", cfg.hub.tls_cert_file), ("hub.peer_ca_file", cfg.hub.peer_ca_file)):
        if p is not None and not p.is_file():
            add(key, f"{p} does not exist")
    for key, p in (("mqtt.key_file", m.key_file), ("mqtt.ingest_key_file", m.ingest_key_file),
                   ("hub.tls_key_file", cfg.hub.tls_key_file)):
        if p is not None:
            try:
                check_private(p, "key file")
            except KeyFileError as exc:
                add(key, str(exc).replace("refusing to start", "the hub will refuse to start"))
    if cfg.hub.metrics_token_file is not None and cfg.hub.metrics_token_file.is_file():
        try:
            check_private(cfg.hub.metrics_token_file, "metrics token file")
        except KeyFileError as exc:
            add("hub.metrics_token_file", str(exc).replace("refusing to start", "the hub will refuse to start"))
    secrets_inline = inline_secrets(cfg)
    if secrets_inline and cfg.source is not None and loose_mode(Path(cfg.source)) is not None:
        add(secrets_inline[0], f"this file holds secrets inline ({', '.join(secrets_inline)}) but is readable by "
                               f"group or others: chmod 600 {cfg.source} (owned by the hub's user), or move "
                               "them out of the file (e.g. [store] token_env)")
    state = cfg.hub.state_dir  # the signing keys, when this machine has them (nothing is created here)
    ring = state / RING_DIR
    for p in [state / KEY_FILE, *(sorted(ring.glob("*.key")) if ring.is_dir() else [])]:
        if p.is_file():
            try:
                check_private(p, "hub signing key")
            except KeyFileError as exc:
                add("hub.state_dir", str(exc).replace("refusing to start", "the hub will refuse to start" if
                                                      p.name == KEY_FILE else "a private key must be 0600"))
    return out
