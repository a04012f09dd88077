"""tracos-sync."""
