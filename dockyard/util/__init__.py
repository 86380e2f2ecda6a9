"""Small helpers every layer may use; none imports another dockyard layer.

Atomic file writes, cancellation, directory trees and their copies, small
kernel files, mount checks, confined tar extraction, generators run in
threads, and Docker's time formats.
"""
