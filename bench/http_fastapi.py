"""FastAPI comparison app for bench/http.

Answers GET /health with the same JSON body and the same security headers as
debate.  The headers are added by a middleware, as a FastAPI app would do it.
It is a plain ASGI middleware rather than @app.middleware("http")
(BaseHTTPMiddleware), which is the faster of the two, so FastAPI is not
handicapped by the comparison.

Run by bench/http with Debian's /usr/bin/python3 as

    python3 http_fastapi.py --port PORT [--workers N] [--ssl-certfile F --ssl-keyfile F]

which serves the app with uvicorn.  With --workers 1 this is exactly what
`uvicorn http_fastapi:app` does.  With --workers N > 1 it does what
`uvicorn --workers N` does (one listening socket, uvicorn's Multiprocess
supervisor) except that the listening socket is made with proto IPPROTO_TCP:
uvicorn's own Config.bind_socket() leaves proto at 0, so asyncio never sets
TCP_NODELAY on accepted connections and every keep-alive response waits ~40 ms
for a delayed ACK (uvicorn issue #3149), which would make FastAPI look far
slower than it is.
"""

import argparse
import socket
import sys

from fastapi import FastAPI

SECURITY_HEADERS = [
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


class SecurityHeadersMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
app.add_middleware(SecurityHeadersMiddleware)


@app.get("/health")
async def health():
    # FastAPI's JSONResponse renders this compactly:
    # {"status":"ok","version":"0.1.0"} with Content-Type: application/json
    return {"status": "ok", "version": "0.1.0"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--ssl-certfile")
    ap.add_argument("--ssl-keyfile")
    ap.add_argument("--log-level", default="warning")
    args = ap.parse_args()

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        "http_fastapi:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_level=args.log_level,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    server = uvicorn.Server(config)
    if args.workers <= 1:
        server.run()  # the stock single-process path
        return
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(config.backlog)
    sock.set_inheritable(True)
    Multiprocess(config, target=server.run, sockets=[sock]).run()


if __name__ == "__main__":
    sys.exit(main())
