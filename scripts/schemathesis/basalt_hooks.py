"""Schemathesis hooks for scripts/test's run against /openapi.json (scripts/lib/schemathesis.sh).

- Every request that carries an `Idempotency-Key` gets a fresh one: a key names one intended
  change, and a generated value repeated with another body is rightly refused (422).
- In the cross-user run (BASALT_ST_OTHER_IDS set), every `{id}` in a path is one of another
  user's resources, and the check below fails any answer that is a success or a 403: another
  user's ids must look like ids that do not exist.
"""

import json
import os
import random
import re
import uuid

import schemathesis

OTHER_IDS = json.loads(os.environ.get("BASALT_ST_OTHER_IDS", "{}"))
ALL_OTHER_IDS = {i for ids in OTHER_IDS.values() for i in ids}


# The documented Idempotency-Key pattern: only a valid key is replaced, so the negative tests
# of the header stay negative.
VALID_KEY = re.compile(r"^[!-~]([ -~]*[!-~])?$")


@schemathesis.hook
def before_call(context, case, kwargs):
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and len(key) <= 255 and VALID_KEY.match(key):
        case.headers["Idempotency-Key"] = str(uuid.uuid4())
    if OTHER_IDS and case.path_parameters:
        kind = _resource(case.operation.path)
        if kind and "id" in case.path_parameters and OTHER_IDS.get(kind):
            case.path_parameters["id"] = random.choice(OTHER_IDS[kind])


def _resource(path):
    for prefix, kind in (("/v1/items/", "item"), ("/v1/webhooks/", "webhook"), ("/v1/api-keys/", "key")):
        if path.startswith(prefix):
            return kind
    return None


@schemathesis.check
def another_users_resource_is_not_found(ctx, response, case):
    """Another user's id answers as a missing one: never a success, never a 403."""
    # OPTIONS (the probe for unsupported methods) is answered from the route, never the row.
    if not ALL_OTHER_IDS or not case.path_parameters or case.method.upper() == "OPTIONS":
        return None
    if not ALL_OTHER_IDS.intersection(str(v) for v in case.path_parameters.values()):
        return None
    status = response.status_code
    if 200 <= status < 300 or status == 403:
        raise AssertionError(f"another user's resource answered {status} to {case.method} {case.path}")
    return None
