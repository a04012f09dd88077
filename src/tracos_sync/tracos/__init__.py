"""TracOS: work orders stored in a MongoDB collection, reached through pymongo's async client."""
