"""Electronic Prescription Service: prescribing, release, dispensing and claims (in progress)."""
