"""The local volume driver: volumes as directories under the data root."""
