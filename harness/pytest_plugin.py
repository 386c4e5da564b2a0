"""pytest plugin: collects suite files as test items (see issue on compare and gate)."""
