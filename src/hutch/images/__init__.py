"""Images: the content-addressed store, names, layouts, safe unpacking, templates.

- ``content``: blobs by digest, verified before they are linked into place
- ``metadata``: names -> descriptors, leases (SQLite)
- ``gc``: mark from names and leases, sweep the rest
- ``walk``: the descriptor graph (index -> manifests -> config + layers)
- ``layout``: OCI image layouts and Docker archives, in and out
- ``unpack``: apply a layer to a directory, whiteouts, diff_id checks; unpack
  an image into snapshots
- ``templates``: root file systems made from what the host has (busybox)
"""
