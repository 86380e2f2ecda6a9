"""Networks: Docker's networks and each container's endpoints on them.

- `records`, `store`: network and endpoint records, names, address allocators
- `service`: `NetworkService`, the `/networks` operations (network backend)
- `plumbing`: `Plumbing`, kernel and DNS state kept equal to the records
  (through `dockyard.network`)
- `endpoints`: `ContainerNetworking`, a container's endpoints from start to stop
- `ports`: published ports held on the host; `legacy_links`: `--link`
- `views`: NetworkSettings, `docker ps` Ports and the network filter
"""
