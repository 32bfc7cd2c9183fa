"""A TCP forwarder that delays every byte by a fixed time: added latency.

Stands in for ``tc qdisc ... netem delay`` where the kernel lacks netem.
Order is kept: each chunk is delivered at its arrival time plus the delay.
Usage: delay_proxy.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS
"""

from __future__ import annotations

import asyncio
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.ensure_future(deliver())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((loop.time() + delay, data))
        queue.put_nowait((loop.time() + delay, b""))
        await sender
    except (ConnectionError, OSError):
        sender.cancel()
        writer.close()


async def main(listen: str, lport: int, target: str, tport: int, delay_ms: float) -> None:
    delay = delay_ms / 1000.0

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        tr, tw = await asyncio.open_connection(target, tport)
        await asyncio.gather(pipe(cr, tw, delay), pipe(tr, cw, delay), return_exceptions=True)

    server = await asyncio.start_server(handle, listen, lport)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(a[0], int(a[1]), a[2], int(a[3]), float(a[4])))
