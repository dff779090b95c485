"""OS snapshots and static IPs: cloud resources a user owns, made by their cloud account's
provider and used by cloud clusters (a snapshot as an image, a static IP on the controller)."""
