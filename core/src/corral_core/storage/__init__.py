"""Storage: buckets, disks, NFS and Lustre file systems, provisioned by storage type plugins."""
