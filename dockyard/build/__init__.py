"""`docker build`: Dockerfiles into images, as Docker's classic builder makes them.

The modules here are pure (no I/O): Dockerfile instructions -> stages and
typed instructions (instructions.py, on the maintained `dockerfile`
parser), variable expansion (shell.py), build args (buildargs.py),
.dockerignore (ignore.py), the context as a tree and COPY's sources and
checksums (context.py), what each instruction does to the image config
(dispatch.py) and the cache's keys (cachekey.py).  `build.driver` carries
a plan out through the engine's own containers and image store.
"""
