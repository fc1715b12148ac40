"""cgroup v2 (unified hosts): one directory in one hierarchy."""
