"""A local webhook receiver: prints each delivery and whether its signature verifies.

Verification uses the official Python `standardwebhooks` package (an implementation independent
of the Rust sender), trying every secret given, so both sides of a secret rotation can be
checked. Answers 204 to a delivery that verifies and 400 to one that does not, as a real
receiver should. Run through scripts/webhook-receiver, which installs the package.

Each delivery is printed as one JSON line on stdout:
  {"webhook_id": ..., "type": ..., "verified": true, "secret": 0, "timestamp": ..., "data": ...}
"""

import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="0 picks a free port")
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        help="a whsec_… signing secret (repeat for a rotation); default $WEBHOOK_SECRET",
    )
    args = parser.parse_args()
    secrets = args.secret or [s for s in [os.environ.get("WEBHOOK_SECRET")] if s]
    if not secrets:
        sys.exit("webhook-receiver: give --secret whsec_… (the secret POST /v1/webhooks returned)")
    verifiers = [Webhook(s) for s in secrets]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server name)
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            verified_by = None
            for i, verifier in enumerate(verifiers):
                try:
                    verifier.verify(body, headers)
                    verified_by = i
                    break
                except Exception:  # noqa: BLE001 (any failure means "does not verify")
                    continue
            try:
                payload = json.loads(body)
            except ValueError:
                payload = {}
            print(
                json.dumps(
                    {
                        "webhook_id": headers.get("webhook-id"),
                        "type": payload.get("type"),
                        "verified": verified_by is not None,
                        "secret": verified_by,
                        "timestamp": payload.get("timestamp"),
                        "data": payload.get("data"),
                        "path": self.path,
                    }
                ),
                flush=True,
            )
            self.send_response(204 if verified_by is not None else 400)
            self.end_headers()

        def log_message(self, *_args) -> None:  # the JSON line above is the log
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    host, port = server.server_address[:2]
    print(json.dumps({"listening": f"{host}:{port}"}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
