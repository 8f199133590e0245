"""What every way in does with enrollments and accounts: check, start or update the workflow, read the store."""
