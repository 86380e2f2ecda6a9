"""The pure translation of Docker's requests into an OCI runtime spec.

No I/O: every host fact arrives as an argument (`host`).  Validation of
Docker's options with dockerd's error texts, the spec itself (`spec`),
resources, security (capabilities, seccomp, profiles), mounts, users,
/etc files and signals.
"""
