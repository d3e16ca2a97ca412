"""Stand-ins for readers, scanners and systems of record, used by every test and the demo.

Production code never imports this package: the ``sim://`` driver reaches the daemon
through the driver registry's entry point.
"""
