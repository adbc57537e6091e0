"""manage.py bench's parts: data generation, the measured cases, the DRF-default peer, the report."""
