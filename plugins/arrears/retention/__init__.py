"""Retention and purge of personal data (CONTRACT §9): see arrears.retention.purge."""
