"""A simulated network of active routers, each node a VVM (missions/activenet): packets as
bytes (``packet``), topologies and scenarios as TOML (``scenario``), the sender's side that
compiles and proves a packet's program (``sender``) and the discrete-event simulator
(``simulator``). See docs/active-networks.md."""
