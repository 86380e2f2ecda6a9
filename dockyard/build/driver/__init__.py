"""The builder's hands: it receives the context, and carries a Dockerfile's
plan out through the engine (`StepEngine`): containers for RUN, layers for
COPY, ADD and WORKDIR, image commits, the cache index."""
