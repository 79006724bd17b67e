"""RQ jobs: pairing liked and disliked responses, exporting preference datasets to S3, cron."""
