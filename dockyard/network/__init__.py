"""Kernel networking under the engine's network service.

Network namespaces, bridges and veth pairs (`links`, over netlink),
address allocation (`ipam`), the iptables rules of every network and
published port (`firewall`), conntrack flushing, and the aardvark-dns name
server (`dns`).
"""
