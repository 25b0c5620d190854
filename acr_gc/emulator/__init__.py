"""A local emulator of the ACR (2018-12-01) and OSS (2019-05-17) APIs.

As in moto, backend state (``clock``, ``storage``, ``registry``) is kept apart from wire
parsing (``acr_wire``, ``oss_wire``, ``signing``); ``server`` runs both ports and the
``/_emulator/`` admin endpoints.
"""
