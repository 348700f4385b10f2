"""Small shared I/O runtime for the gateway and the hub (and simulators).

DESIGN.md: I/O helpers that both sides need (supervised tasks, backoff, the SQLite opener, key files,
the MQTT client wrapper) live here, beside the contract, so nothing is written twice and the contract
stays pure. It may import the contract; the gateway, hub, simulators and firmware tooling may import it;
it never imports any of them (import-linter).
"""
