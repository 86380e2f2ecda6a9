"""The Docker Engine API over HTTP: the server, the routes and the streams.

`server/` speaks HTTP/1.1 (h11) and websockets (wsproto) on the listeners;
`routes/` turns each request into a call on one backend (`dockyard.backend`)
and its answer into Docker's shapes.  Nothing here imports the engine.
"""
