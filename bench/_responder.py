"""The other process of the request/reply benchmark: one responder per system, on one event loop.

Run by bench/_reqrep.py as ``python bench/_responder.py TIDINGS_URL NATS_URL HTTP_PORT``. It
answers, with the request's own bytes:

* Tidings requests on topic ``rr`` (``client.subscribe`` + ``message.reply``);
* NATS core requests on subject ``rr`` (a plain subscription that ``respond``\\ s);
* HTTP ``POST /rr`` on 127.0.0.1:HTTP_PORT (starlette under uvicorn, the usual
  way a Python service exposes an endpoint).

All three share this process and its loop (uvloop, as in the benchmark's
own process), so each system's figure is the same two Python processes
talking, and only the path between them differs.
It prints ``ready`` once all three answer, and runs until stdin closes.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import nats
import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import tidings


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


async def main(tidings_url: str, nats_url: str, http_port: int) -> None:
    client = tidings.connect(url=tidings_url, service="responder")
    await client.__aenter__()
    await client.publish("rr", b"create")  # so the subscription finds the topic
    subscription = await client.subscribe("rr", group="responder", start="latest")

    async def answer_tidings() -> None:
        async for message in subscription:
            if message.is_request:
                await message.reply(message.data)
            else:
                await message.ack()

    nc = await nats.connect(nats_url)

    async def answer_nats(message: Any) -> None:
        await message.respond(message.data)

    await nc.subscribe("rr", cb=answer_nats)
    app = Starlette(routes=[Route("/rr", echo, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=http_port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    tasks = [asyncio.ensure_future(answer_tidings()), asyncio.ensure_future(server.serve())]
    while not server.started:
        await asyncio.sleep(0.01)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes it
    server.should_exit = True
    await tasks[1]  # uvicorn's own shutdown, lifespan included
    await nc.close()
    await subscription.close()
    await client.__aexit__(None, None, None)
    tasks[0].cancel()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))  # as the benchmark's own process
