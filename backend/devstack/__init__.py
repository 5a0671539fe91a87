"""Start and stop the local services SpineAgent needs, without systemd.

Used by the demo (``python -m backend.devstack demo``) and by the test fixtures,
so both bring services up the same way.
"""
