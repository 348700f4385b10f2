"""Simulated devices, brokers and a whole city, speaking the real protocols over ptys and MQTT."""
