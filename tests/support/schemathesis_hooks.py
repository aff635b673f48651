"""schemathesis hooks for the emulated API run (tests/suite/emulated_schemathesis.rs).

The emulated function URL (cargo lambda watch) turns a request into a Lambda event itself and
answers 500 text/plain, without invoking the function, when a JSON-typed body is not UTF-8: it
cannot put such bytes into the event's text body. That answer is the emulator's, not the API's,
so bodies it cannot carry are not generated. Every other syntax-fuzzed body (bytes that are not
JSON but are UTF-8) is still sent; the API's own answer to non-UTF-8 JSON is tested in process
(shared/http/tests/api.rs).
"""

import schemathesis


@schemathesis.hook
def filter_body(context, body):
    if isinstance(body, (bytes, bytearray)):
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True
