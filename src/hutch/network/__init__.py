"""Container networking: links, addresses, IPAM, the firewall, published ports.

Everything here works on a *given* network namespace playing the host: the
engine passes its own (``None``, the caller's namespace), tests pass a namespace
they made. A namespace is named by a path (``/proc/PID/ns/net`` or
``/run/netns/NAME``), never by a container object.

- ``netns``: run a function, a socket or a command inside a namespace; sysctls.
- ``netlink``: the adapter over pyroute2 (its only importer): links, addresses,
  routes, qdiscs.
- ``ipam``: subnets and addresses, persisted in SQLite.
- ``ports``: ``-p [IP:]HOST:CONTAINER[/PROTO]`` parsing and conflicts.
- ``bridge``: a network is a bridge; an attachment is a veth pair.
- ``firewall``: the nftables ruleset (``nft`` binary, its only user).
- ``manager``: the facade that ties them together with a state directory.

Importing this package imports nothing heavy: pyroute2 is loaded by ``netlink``
on first use.
"""
