"""Security tests: each module says at its top what it defends and how."""
