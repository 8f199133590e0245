"""Development only: the embedded stack (`enroll up`), its SMTP mail sink and the /dev/mailbox pages.
Nothing else in the product imports this package."""
