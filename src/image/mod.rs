//! OCI manifests, configs, indexes, layouts, archives and transports.
