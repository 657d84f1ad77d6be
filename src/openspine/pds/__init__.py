"""Personal Demographics Service: the national patient index."""
