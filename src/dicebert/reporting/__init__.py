"""Run outputs (metrics.json, confusion matrix, results table) and sweep aggregation."""
