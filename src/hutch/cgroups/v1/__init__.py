"""cgroup v1 (legacy and hybrid hosts): one directory per hierarchy."""
