"""A fault on one network link, applied from a short-lived container that shares the
network namespace of one end (`docker run --network container:<end> --cap-add NET_ADMIN`).
The lab's own containers gain no capability: this process holds it, and only while the
fault lasts.

    linkfault.py --peer 172.20.0.3 [--peer ...] [--delay-ms 300 --jitter-ms 50]
                 [--loss-pct 5] [--rate-kbit 256] [--reset] [--seconds 30]
    linkfault.py --clear

Only packets to the ``--peer`` addresses (the other end's containers) are touched, so the
other links of this container stay as they are.

- loss: netfilter drops that share of the packets to the peer at random (the
  ``statistic`` match), so TCP retransmits and calls slow down or time out.
- bandwidth: an HTB class with that rate for the peer's packets on the interface facing it.
- resets: every TCP packet to the peer is answered with a RST (REJECT --reject-with
  tcp-reset): open connections break with "connection reset" and new ones are refused.
- delay: not every kernel has netem (the lab's test VMs have none, nor a prio qdisc), so
  the delay is made here instead: new TCP connections to the peer are redirected to a
  local relay (REDIRECT) that holds each chunk DELAY +/- JITTER ms in each direction, in
  order. Connections open before the fault are reset once so they reconnect through it.
  A round trip therefore grows by about twice the delay, as netem on both ends would
  make it. Only TCP is delayed; everything the lab's services say to each other is TCP.

It runs until ``--seconds`` pass or it is stopped (SIGTERM: `docker stop`), then takes
every rule away. ``--clear`` takes away what a killed run left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import random
import signal
import socket
import struct
import subprocess
import sys
import time

CHAIN = "CRASHLAB-LINK"
QDISC_HANDLE = "4c"  # the lab's HTB root; Docker's interfaces have none of their own
MARK = "0x4c4b"  # the relay's own connections to the peer: not redirected, not reset
RELAY_PORT = 15999
SO_ORIGINAL_DST = 80


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        sys.exit(f"linkfault: `{' '.join(cmd)}` failed: {result.stderr.strip()}")
    return result


def device_towards(peer: str) -> str:
    """The interface packets to the peer leave by (`ip route get`)."""
    words = sh("ip", "-o", "route", "get", peer).stdout.split()
    return words[words.index("dev") + 1]


def clear() -> None:
    for table, hook in (("filter", "OUTPUT"), ("nat", "OUTPUT")):
        while sh("iptables", "-t", table, "-D", hook, "-j", CHAIN, check=False).returncode == 0:
            pass
        sh("iptables", "-t", table, "-F", CHAIN, check=False)
        sh("iptables", "-t", table, "-X", CHAIN, check=False)
    for line in sh("ip", "-o", "link", check=False).stdout.splitlines():
        dev = line.split(":")[1].strip().split("@")[0]
        qdiscs = sh("tc", "qdisc", "show", "dev", dev, check=False).stdout
        if f"htb {QDISC_HANDLE}: root" in qdiscs:
            sh("tc", "qdisc", "del", "dev", dev, "root", check=False)


def rule(table: str, *spec: str) -> None:
    sh("iptables", "-t", table, "-A", CHAIN, *spec)


def apply(args: argparse.Namespace) -> None:
    for table in ("filter", "nat"):
        sh("iptables", "-t", table, "-N", CHAIN)
        sh("iptables", "-t", table, "-I", "OUTPUT", "-j", CHAIN)
    shaped: set[str] = set()
    for peer in args.peer:
        apply_to(peer, args, shaped)


def apply_to(peer: str, args: argparse.Namespace, shaped: set[str]) -> None:
    """The rules for one peer; ``shaped``: the interfaces that have the HTB root already."""
    if args.reset:
        rule("filter", "-p", "tcp", "-d", peer, "-j", "REJECT", "--reject-with", "tcp-reset")
    if args.loss_pct:
        share = f"{args.loss_pct / 100:.4f}"
        rule("filter", "-d", peer, "-m", "statistic", "--mode", "random",
             "--probability", share, "-j", "DROP")  # fmt: skip
    if args.delay_ms:
        not_relay = ("-m", "mark", "!", "--mark", MARK)
        rule("nat", "-p", "tcp", "-d", peer, *not_relay, "-j", "REDIRECT",
             "--to-ports", str(RELAY_PORT))  # fmt: skip
        # Redirected packets leave nat for 127.0.0.1, so this catches only connections
        # opened before the fault: reset once, they come back through the relay.
        rule("filter", "-p", "tcp", "-d", peer, *not_relay, "-j", "REJECT",
             "--reject-with", "tcp-reset")  # fmt: skip
    if args.rate_kbit:
        dev = device_towards(peer)
        if dev not in shaped:
            shaped.add(dev)
            sh("tc", "qdisc", "add", "dev", dev, "root", "handle", f"{QDISC_HANDLE}:", "htb",
               "default", "1", "r2q", "100000")  # fmt: skip
            sh("tc", "class", "add", "dev", dev, "parent", f"{QDISC_HANDLE}:", "classid",
               f"{QDISC_HANDLE}:1", "htb", "rate", "10gbit")  # fmt: skip
            sh("tc", "class", "add", "dev", dev, "parent", f"{QDISC_HANDLE}:", "classid",
               f"{QDISC_HANDLE}:2", "htb", "rate", f"{args.rate_kbit}kbit",
               "burst", "4k", "cburst", "4k")  # fmt: skip
        sh("tc", "filter", "add", "dev", dev, "parent", f"{QDISC_HANDLE}:", "protocol", "ip",
           "prio", "1", "u32", "match", "ip", "dst", f"{peer}/32", "flowid",
           f"{QDISC_HANDLE}:2")  # fmt: skip


# --- the delay relay ----------------------------------------------------------------------


class Delay:
    def __init__(self, delay_ms: int, jitter_ms: int) -> None:
        self.delay, self.jitter = delay_ms / 1000, jitter_ms / 1000

    def draw(self) -> float:
        return max(0.0, self.delay + random.uniform(-self.jitter, self.jitter))


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: Delay) -> None:
    """Copies one direction, each chunk held for its delay; chunks never overtake."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, chunk = await queue.get()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if not chunk:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    last = 0.0
    try:
        while chunk := await reader.read(65536):
            last = max(last, time.monotonic() + delay.draw())
            queue.put_nowait((last, chunk))
        queue.put_nowait((last, b""))
        await sender
    except (ConnectionError, OSError):
        sender.cancel()
        writer.close()


async def relay(delay: Delay) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
        port, packed = struct.unpack_from("!2xH4s", raw)
        host = str(ipaddress.IPv4Address(packed))
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, int(MARK, 16))
        # A relay forwards each chunk as it is due: no batching of small writes on top.
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        upstream.setblocking(False)
        try:
            await asyncio.sleep(delay.draw())  # the handshake crosses the slow link too
            await asyncio.get_running_loop().sock_connect(upstream, (host, port))
            up_reader, up_writer = await asyncio.open_connection(sock=upstream)
        except OSError:
            upstream.close()
            writer.close()
            return
        await asyncio.gather(
            pipe(reader, up_writer, delay), pipe(up_reader, writer, delay), return_exceptions=True
        )
        for w in (writer, up_writer):
            w.close()

    server = await asyncio.start_server(serve, "127.0.0.1", RELAY_PORT, reuse_address=True)
    async with server:
        await server.serve_forever()


# --- the run ------------------------------------------------------------------------------


async def hold(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task[object]] = [asyncio.create_task(stop.wait())]
    if args.delay_ms:
        tasks.append(asyncio.create_task(relay(Delay(args.delay_ms, args.jitter_ms))))
    timeout = args.seconds or None
    done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    for task in done:
        if not task.cancelled() and task.exception():
            raise task.exception()  # type: ignore[misc]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--peer", action="append", default=[], help="an address of the other end")
    p.add_argument("--delay-ms", type=int, default=0)
    p.add_argument("--jitter-ms", type=int, default=0)
    p.add_argument("--loss-pct", type=float, default=0.0)
    p.add_argument("--rate-kbit", type=int, default=0)
    p.add_argument("--reset", action="store_true")
    p.add_argument("--seconds", type=float, default=0.0, help="0: until stopped")
    p.add_argument("--clear", action="store_true", help="take away what a killed run left")
    args = p.parse_args()
    clear()  # a run killed before it could clean up leaves its rules: start clean
    if args.clear:
        return
    if not args.peer:
        p.error("--peer is needed")
    try:
        apply(args)
        print("linkfault: on", flush=True)
        asyncio.run(hold(args))
    finally:
        clear()
        print("linkfault: off", flush=True)


if __name__ == "__main__":
    main()
