"""Images: the store of images and layers on disk, and the operations on it.

The store (`store`, `layers`), Docker's image shapes and filters, load and
save (`archive`), import changes, removal, the embedded busybox, progress
messages, references, and registry distribution (`distribution/`).
"""
