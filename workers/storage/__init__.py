"""Helpers several jobs share and no job owns: streaming objects to S3 (``s3io``) and one run of
a kind per project at a time (``run_lock``). Nothing here imports a job."""
