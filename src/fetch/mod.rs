//! Fetching inputs: local paths, http(s), mirror directories; every stream hashed as it flows.
