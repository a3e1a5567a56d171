"""safecam: privacy-preserving safety sensors from CCTV cameras (Home Assistant integration)."""
