"""moto_server, with DynamoDB requests handled one at a time.

`moto_server` runs a threaded WSGI server, and moto's DynamoDB backend checks a condition and
then writes without a lock, so two concurrent conditional writes on one item can both succeed.
Real DynamoDB makes each conditional write (and each transaction) atomic; the JobStore
conformance suite's race checks depend on exactly that. Serialising DynamoDB requests restores
it; every other service stays concurrent (Step Functions' executor calls back into the server).

Usage: python moto_serialized.py -H HOST -p PORT   (the same flags as moto_server)
"""

import argparse
import os
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    # moto's own executors call back to localhost:$MOTO_PORT: keep it equal to the server port.
    os.environ.setdefault("MOTO_PORT", str(args.port))

    app = DomainDispatcherApplication(create_backend_app)
    dynamodb = threading.Lock()

    def serialised(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with dynamodb:
                # Drain the response under the lock: the write happens while it is produced.
                return list(app(environ, start_response))
        return app(environ, start_response)

    run_simple(
        args.host,
        args.port,
        serialised,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
