//! kiln-sandbox: run one command in fresh user, mount, pid, net, uts, ipc and cgroup
//! namespaces over a given rootfs. Mechanism only: it knows nothing of OCI images or recipes.
