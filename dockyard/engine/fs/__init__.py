"""A container's filesystem as Docker operations.

- `service`: `ContainerFiles`, export, diff, cp (stat, archive, extract), commit
- `views`: mounted views of a container's root for the length of a request
- `paths`: chroot-like path resolution on directory fds, Docker's path stat
- `tar`: tar streams out of, and confined extraction into, a container root
- `diff`: `docker diff` from the overlay upper dir
- `commit`: the committed image's config and layer
"""
