"""The marketplace: an organization's catalogue of published workflows and clusters (storage
joins with its kind), each with immutable versions, that users browse, use (subscribe to a
workflow: ``latest`` or a pinned version), fork (an independent copy) and run from workflows
with ``uses: marketplace/<slug>[/<version>]``."""
