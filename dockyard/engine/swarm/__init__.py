"""Swarm mode: one node, its cluster state, and the swarm-scoped networks it serves."""
