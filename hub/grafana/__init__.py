"""Grafana as code: dashboards and the InfluxDB datasource (``dashboards``), the extra line-protocol points
they need (``points``), Grafana-style InfluxQL interpolation (``influxql``) and an HTTP API client (``push``)."""
