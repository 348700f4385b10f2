"""A loopback TCP relay that misbehaves on demand: put it between a client (gateway, hub) and its broker.

Faults (each counted in ``stats``; ``heal()`` clears them all):

- ``cut()`` / ``restore()``: drop every connection and refuse new ones (an uplink outage).
- ``stall(direction)``: stop forwarding one direction while TCP stays open; the bytes wait in the
  kernel buffers (backpressure) and flow again after ``heal()``.
- ``blackhole(direction)``: read and silently discard one direction (a half-open connection: the sender
  sees nothing wrong, the receiver gets nothing).
- ``throttle(bytes_per_s)``: pace both directions.
- ``delay_pubacks(seconds)``: MQTT-aware: PUBACK packets from the broker reach the client ``seconds`` late
  (other packets pass), the "slow PUBACK with the connection up" case.
- ``reset_mid_packet(direction)``: the next MQTT packet in that direction is cut in half and both sockets
  are reset (RST), a connection torn down in the middle of a packet.
- ``reset_after_packets(direction, n)``: the next ``n`` whole MQTT packets in that direction are gathered and
  written in one go, immediately followed by a reset: the receiver finds several packets *and* the reset in
  one wake-up (a NAT box or a broker dropping a busy connection between packets).
- ``ack_and_lose(n, topic_suffix)``: MQTT-aware: the next ``n`` QoS 1 PUBLISH packets from the client whose topic
  ends with ``topic_suffix`` never reach the broker, and the relay answers each with the PUBACK the broker would
  have sent: a broker that acknowledges a message and then loses it (a clustered broker losing the node that
  acked it, a broker killed with the message still in memory).

The relay forwards whole MQTT packets (it tracks packet boundaries in both directions), so a fault that starts
mid-stream never splits one.

Directions: ``"up"`` is client -> broker, ``"down"`` is broker -> client.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import Counter

from simulators.brokers import free_port

DIRECTIONS = ("up", "down")
PUBACK = 4
PUBLISH = 3


def _packet_len(buf: bytes | bytearray) -> int | None:
    """Length of the first complete MQTT packet in ``buf`` (fixed header + remaining length), else None."""
    mult, value = 1, 0
    for i in range(1, min(len(buf), 5)):
        b = buf[i]
        value += (b & 0x7F) * mult
        if not b & 0x80:
            total = i + 1 + value
            return total if len(buf) >= total else None
        mult *= 128
    return None


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class NetCut:
    def __init__(self, target_port: int, *, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self.up = True
        self.cuts = 0
        self.stats: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task] = set()
        self._flowing = {d: asyncio.Event() for d in DIRECTIONS}
        for ev in self._flowing.values():
            ev.set()
        self._blackholed: set[str] = set()
        self._rate: float | None = None
        self._puback_delay = 0.0
        self._reset: set[str] = set()
        self._reset_after: dict[str, int] = {}
        self._lose: list[list] = []  # [remaining, topic suffix] for ack_and_lose

    async def start(self) -> NetCut:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    @property
    def connections(self) -> int:
        return len(self._conns)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        self.stats["connections"] += 1
        pair = (writer, up_w)
        try:
            await asyncio.gather(self._pipe("up", reader, up_w, pair), self._pipe("down", up_r, writer, pair))
        finally:
            self._conns.discard(task)
            for w in pair:
                w.close()

    async def _pipe(self, direction: str, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    pair: tuple[asyncio.StreamWriter, ...]) -> None:
        buf = bytearray()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, OSError):
            while True:
                await self._flowing[direction].wait()
                data = await src.read(65536)
                if not data:
                    break
                await self._flowing[direction].wait()  # stalled while we waited: hold what we read
                if direction in self._blackholed:
                    self.stats[f"dropped_bytes_{direction}"] += len(data)
                    continue
                if self._rate:
                    await asyncio.sleep(len(data) / self._rate)
                    self.stats[f"throttled_bytes_{direction}"] += len(data)
                if direction in self._reset_after:
                    buf += data
                    if await self._burst_and_reset(direction, buf, dst, pair):
                        return
                    continue
                buf += data
                while (n := _packet_len(buf)) is not None:
                    packet, buf = bytes(buf[:n]), buf[n:]
                    if direction in self._reset:
                        self._reset.discard(direction)
                        self.stats[f"resets_{direction}"] += 1
                        dst.write(packet[:max(1, n // 2)])
                        with contextlib.suppress(ConnectionError):
                            await dst.drain()
                        for w in pair:
                            _rst(w)
                        return
                    if direction == "up" and self._lose and self._lost_and_acked(packet, pair[0]):
                        continue
                    if direction == "down" and packet[0] >> 4 == PUBACK and self._puback_delay > 0:
                        self.stats["delayed_pubacks"] += 1
                        loop.call_later(self._puback_delay, self._late_write, dst, packet)
                        continue
                    dst.write(packet)
                await dst.drain()
        dst.close()

    async def _burst_and_reset(self, direction: str, buf: bytearray, dst: asyncio.StreamWriter,
                               pair: tuple[asyncio.StreamWriter, ...]) -> bool:
        """``reset_after_packets``: True once the packets went out in one write and both sockets were reset."""
        end, count = 0, 0
        while count < self._reset_after[direction] and (n := _packet_len(buf[end:])) is not None:
            end, count = end + n, count + 1
        if count < self._reset_after[direction]:
            return False
        del self._reset_after[direction]
        self.stats[f"resets_{direction}"] += 1
        dst.write(bytes(buf[:end]))
        with contextlib.suppress(ConnectionError):
            await dst.drain()
        for w in pair:
            _rst(w)
        return True

    def _lost_and_acked(self, packet: bytes, client: asyncio.StreamWriter) -> bool:
        """``ack_and_lose``: True if ``packet`` is a QoS 1 PUBLISH to lose (then its PUBACK went to the client)."""
        if packet[0] >> 4 != PUBLISH or (packet[0] >> 1) & 3 != 1:
            return False
        i = 1
        while packet[i] & 0x80:  # the remaining-length bytes
            i += 1
        i += 1
        tlen = int.from_bytes(packet[i:i + 2], "big")
        topic = packet[i + 2:i + 2 + tlen].decode("utf-8", "replace")
        pid = packet[i + 2 + tlen:i + 4 + tlen]
        for rule in self._lose:
            if rule[0] > 0 and topic.endswith(rule[1]):
                rule[0] -= 1
                self._lose = [r for r in self._lose if r[0] > 0]
                self.stats["acked_and_lost"] += 1
                client.write(bytes([PUBACK << 4, 2]) + pid)
                return True
        return False

    @staticmethod
    def _late_write(dst: asyncio.StreamWriter, packet: bytes) -> None:
        if not dst.is_closing():
            dst.write(packet)

    # ---- faults ----------------------------------------------------------------------------------------------

    def cut(self) -> None:
        self.up = False
        self.cuts += 1
        for task in list(self._conns):
            task.cancel()

    def restore(self) -> None:
        self.up = True

    def stall(self, direction: str) -> None:
        self._flowing[self._dir(direction)].clear()
        self.stats[f"stalls_{direction}"] += 1

    def blackhole(self, direction: str) -> None:
        self._blackholed.add(self._dir(direction))
        self.stats[f"blackholes_{direction}"] += 1

    def throttle(self, bytes_per_s: float | None) -> None:
        self._rate = bytes_per_s

    def delay_pubacks(self, seconds: float) -> None:
        self._puback_delay = seconds

    def reset_mid_packet(self, direction: str) -> None:
        self._reset.add(self._dir(direction))

    def reset_after_packets(self, direction: str, n: int = 3) -> None:
        self._reset_after[self._dir(direction)] = max(1, n)

    def ack_and_lose(self, n: int = 1, topic_suffix: str = "") -> None:
        self._lose.append([max(1, n), topic_suffix])

    def heal(self) -> None:
        """End every fault except a ``cut`` (use ``restore`` for that); connections that survived go on."""
        for ev in self._flowing.values():
            ev.set()
        self._blackholed.clear()
        self._rate = None
        self._puback_delay = 0.0
        self._reset.clear()
        self._reset_after.clear()
        self._lose.clear()

    @staticmethod
    def _dir(direction: str) -> str:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
        return direction

    async def close(self) -> None:
        self.cut()
        self.heal()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
