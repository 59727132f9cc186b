"""Use cases of the node. They orchestrate the pure core over the ports; no SQL, no HTTP."""
