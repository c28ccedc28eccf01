"""moto's S3 server, with conditional writes made atomic as S3's are.

Usage: moto_serve.py HOST PORT

S3 documents that of conditional writes racing on one key (If-Match, If-None-Match) the first
to finish wins and the others fail with 412. moto checks the condition and stores the object
in two steps, on a thread per request, so two PUTs conditional on the same ETag can both
succeed: the lost update that conditional writes exist to prevent. The writer tests
(tests/common/scenarios.rs) met it under load as a bucket file missing one run's rows, with
every run reporting success. Here every request that changes an object (PUT, POST, DELETE)
holds one lock from the check to the store, which is what S3 guarantees; reads stay parallel.
Otherwise this is `moto_server -H HOST -p PORT`.
"""

import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

WRITES = {"PUT", "POST", "DELETE"}


def atomic_writes(app):
    locks = {}
    guard = threading.Lock()

    def lock_of(environ):
        # One lock per object (the host names the bucket in virtual-hosted requests), as S3
        # orders the writes of one key and no others: a lock for all would queue a small write
        # behind every large upload in flight.
        key = (environ.get("HTTP_HOST", ""), environ.get("PATH_INFO", ""))
        with guard:
            return locks.setdefault(key, threading.Lock())

    def serve(environ, start_response):
        if environ["REQUEST_METHOD"] not in WRITES:
            return app(environ, start_response)
        with lock_of(environ):
            # The response body is produced inside the lock: moto may store while it iterates.
            return list(app(environ, start_response))

    return serve


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    run_simple(host, port, atomic_writes(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
