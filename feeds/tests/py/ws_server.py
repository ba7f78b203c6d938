#!/usr/bin/env python3
"""A scripted WebSocket server on the `websockets` package: an implementation independent of
Keel's, for the feeds network tests (feeds/tests/net_python.rs).

Usage: ws_server.py --script JSON [--host 127.0.0.1] [--certfile PEM --keyfile PEM]

With --certfile and --keyfile it serves wss:// (TLS) with that certificate.

Listens on port 0 and prints the port on the first line of stdout. Exits when stdin closes (so
an orphan never outlives its test) or when killed.

The script is {"connections": [[step, ...], ...], "default": [step, ...]}: the n-th accepted
connection runs connections[n] (or "default" past the end). Meanwhile every message the client
sends is recorded and echoed back as "echo:<message>" (text) or b"echo:" + message (binary).
After its last step a connection stays open until the client goes away.

Steps:
  {"send": "text"}              one text message
  {"send_binary_hex": "0102"}   one binary message
  {"fragments": ["a", "b"]}     one text message sent as several frames
  {"large": N}                  one text message of N bytes ("x" * N)
  {"ping": "data"}              a ping; once the client's pong arrives, send "pong-ok:data"
  {"sleep": seconds}
  {"wait_recv": N}              wait until N messages were received on this connection
  {"close": code, "reason": s}  server-initiated close handshake
  {"send_prev_close": true}     send "prev-close:<code>", the code of the close frame the client
                                answered the last server-initiated close with ("none" if it
                                did not answer)
  {"drop": true}                abort the TCP connection without a close frame
  {"silent": true}              send nothing more, ever (the client should find it stale)
"""

import argparse
import asyncio
import json
import os
import sys
import threading

try:
    from websockets.asyncio.server import serve
except ImportError as e:  # the Rust test turns this into a clear failure
    print(f"cannot import websockets ({e}): pip install websockets", file=sys.stderr, flush=True)
    sys.exit(3)


def log(*args):
    print("ws_server:", *args, file=sys.stderr, flush=True)


class Script:
    def __init__(self, spec):
        self.connections = spec.get("connections", [])
        self.default = spec.get("default", [])
        self.accepted = 0
        self.prev_close = "none"

    def steps_for_next(self):
        n = self.accepted
        self.accepted += 1
        steps = self.connections[n] if n < len(self.connections) else self.default
        return n, steps


async def echo(ws, received, cond):
    try:
        async for msg in ws:
            async with cond:
                received.append(msg)
                cond.notify_all()
            if isinstance(msg, str):
                await ws.send("echo:" + msg)
            else:
                await ws.send(b"echo:" + msg)
    except Exception as e:  # connection gone: the script ends too
        log("echo ended:", type(e).__name__, e)


async def run_steps(n, ws, steps, received, cond, script):
    for step in steps:
        if "send" in step:
            await ws.send(step["send"])
        elif "send_binary_hex" in step:
            await ws.send(bytes.fromhex(step["send_binary_hex"]))
        elif "fragments" in step:
            await ws.send(list(step["fragments"]))
        elif "large" in step:
            await ws.send("x" * int(step["large"]))
        elif "ping" in step:
            data = step["ping"]
            waiter = await ws.ping(data)
            await asyncio.wait_for(waiter, 10)
            await ws.send("pong-ok:" + data)
        elif "sleep" in step:
            await asyncio.sleep(float(step["sleep"]))
        elif "wait_recv" in step:
            want = int(step["wait_recv"])
            async with cond:
                await asyncio.wait_for(cond.wait_for(lambda: len(received) >= want), 10)
        elif "close" in step:
            await ws.close(int(step["close"]), step.get("reason", ""))
            rcvd = ws.protocol.close_rcvd
            script.prev_close = "none" if rcvd is None else str(rcvd.code)
            log(f"conn {n}: closed with {step['close']}, client answered {script.prev_close}")
            return
        elif "send_prev_close" in step:
            await ws.send("prev-close:" + script.prev_close)
        elif "drop" in step:
            ws.transport.abort()
            log(f"conn {n}: dropped")
            return
        elif "silent" in step:
            await asyncio.sleep(3600)
        else:
            raise ValueError(f"unknown step {step!r}")


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--script", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    args = parser.parse_args()
    ssl_context = None
    if args.certfile:
        import ssl

        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.load_cert_chain(args.certfile, args.keyfile)
    script = Script(json.loads(args.script))

    async def handler(ws):
        n, steps = script.steps_for_next()
        log(f"conn {n}: open, path {ws.request.path}")
        received = []
        cond = asyncio.Condition()
        echo_task = asyncio.create_task(echo(ws, received, cond))
        try:
            await run_steps(n, ws, steps, received, cond, script)
            await ws.wait_closed()
        except Exception as e:
            log(f"conn {n}: script ended:", type(e).__name__, e)
        finally:
            echo_task.cancel()
        log(f"conn {n}: done, received {received!r}"[:300])

    async with serve(
        handler,
        args.host,
        0,
        compression=None,
        ping_interval=None,
        max_size=1 << 24,
        ssl=ssl_context,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        await asyncio.Future()


def exit_when_stdin_closes():
    try:
        sys.stdin.buffer.read()
    finally:
        os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    asyncio.run(main())
