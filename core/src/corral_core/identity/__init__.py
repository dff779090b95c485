"""Identity and access: orgs, users, groups, roles, credentials, SSH keys, sharing."""
