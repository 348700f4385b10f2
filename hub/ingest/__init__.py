"""Telemetry ingest: decode and validate batches, write InfluxDB line protocol, spool while the store is down."""

from hub.ingest.lineproto import LineProtocolError, Point
from hub.ingest.pipeline import Ingest
from hub.ingest.service import IngestConfig, IngestService
from hub.ingest.spool import Backoff, FlushResult, Spool, SpoolError
from hub.ingest.writer import StoreRejected, StoreUnavailable, TargetConfig, WriteError, make_writer

__all__ = ["Backoff", "FlushResult", "Ingest", "IngestConfig", "IngestService", "LineProtocolError", "Point", "Spool", "SpoolError",
           "StoreRejected", "StoreUnavailable", "TargetConfig", "WriteError", "make_writer"]
