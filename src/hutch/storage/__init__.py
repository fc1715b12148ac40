"""Copy-on-write storage: snapshotters behind one Protocol, returning mount records.

``hutch.storage.snapshotter`` is the contract, ``hutch.storage.drivers`` the
registry of implementations (overlay, copy, btrfs), ``hutch.storage.mount``
mounts a snapshot's records on a directory.
"""
