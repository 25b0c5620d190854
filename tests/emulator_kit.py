"""Helpers shared by the tests that use the emulator: the emulator to start, the default
test key and raw SDK clients.

A module of its own (``tests`` is on ``sys.path`` through the pytest ``pythonpath``
setting) rather than names imported from a ``conftest``: several folders have a
``conftest.py``, and ``from conftest import …`` would get whichever was imported first.
"""

from __future__ import annotations

import os

AK = "LTAI-test-ak"
SECRET = "test-secret-do-not-echo"


def make_acr_client(endpoint: str, access_key_id: str = AK, secret: str = SECRET, **config):
    from alibabacloud_cr20181201.client import Client
    from alibabacloud_tea_openapi import models as open_api_models

    return Client(
        open_api_models.Config(
            access_key_id=access_key_id,
            access_key_secret=secret,
            endpoint=endpoint,
            protocol="http",
            region_id="cn-hangzhou",
            **config,
        )
    )


def call_gc_action(client, action: str, **query) -> dict:
    """One of the emulator's own GC actions, sent exactly as the GcDriver sends it."""
    from alibabacloud_tea_openapi import utils_models as open_api_util_models
    from alibabacloud_tea_openapi.utils import Utils
    from darabonba.runtime import RuntimeOptions

    params = open_api_util_models.Params(
        action=action,
        version="2018-12-01",
        protocol="HTTP",
        pathname="/",
        method="POST",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    request = open_api_util_models.OpenApiRequest(query=Utils.query(query))
    return client.call_api(params, request, RuntimeOptions())["body"]


def new_emulator(dataset=None, **options):
    """The emulator a test gets (not yet started: ``with new_emulator(...) as emu`` or
    ``.start()``), with ``EmulatorProcess``'s arguments.

    A ``ThreadedEmulator``: the same servers on a thread of the test process, which starts in
    a fraction of the time of a new interpreter. Tests that kill, SIGSTOP or restart the
    emulator, or that test ``acr-gc emulator serve`` itself, use ``EmulatorProcess``
    directly. ``ACR_GC_TEST_EMULATOR=process`` gives every test a process instead (to
    compare timings, or to rule the thread out when a test misbehaves)."""
    if os.environ.get("ACR_GC_TEST_EMULATOR", "thread") == "process":
        from acr_gc.emulator.process import EmulatorProcess

        return EmulatorProcess(dataset, **options)
    from acr_gc.emulator.threaded import ThreadedEmulator

    return ThreadedEmulator(dataset, **options)
