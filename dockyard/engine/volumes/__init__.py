"""Volumes and mounts: Docker's volumes, binds and tmpfs mounts of containers.

- `service`: `VolumeService`, the `/volumes` operations (volume backend)
  and the volumes containers use (through `dockyard.volumes`)
- `mounts`: `ContainerMounts`, a container's mounts from create to each start
- `points`: what a record keeps of each mount; Docker's MountPoint shape
- `targets`: where a mount lands in the root; `propagation`: shared binds
- `copyup`: filling a new volume from the image
- `fsview`: a container's volumes inside a filesystem view, for `docker cp`
"""
