"""Adapters: the only code that touches disks, networks and clocks."""
