"""Resources: every long-lived thing Corral manages, with desired and observed state."""
