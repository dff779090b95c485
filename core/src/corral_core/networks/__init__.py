"""Networks: the networking stack a cloud account's clusters run on, provisioned by its provider."""
