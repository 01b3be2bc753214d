"""The flow of one answer, free of Discord: history, records."""
