"""Containers: the records and everything that moves one through Docker's states.

- `store`: `ContainerStore`, the records, their names, locks and files
- `record`: what a record persists; `names`: validation and generated names
- `create`: `ContainerCreator`, a create request to a record
- `specbuild`: `SpecBuilder`, the I/O half of a start's OCI spec
- `runner`: `ContainerRunner`, one container's runtime operations
- `lifecycle`: `Lifecycle`, start, stop, kill, pause, restart, wait
- `monitor`: `ExitMonitor`, a task per running container and its waiters
- `restart`, `health`: restart policies and health checks, dockerd's rules
- `removal`: `ContainerRemover`, rm and prune
- `operate`: top and update; `stats`: sampling and Docker's stats shape
- `attach`: clients on a container's stdio through conmon's attach socket
- `views`: `ContainerViews`, inspect and list in Docker's shapes
- `initlayer`: the paths every container's root has
"""
