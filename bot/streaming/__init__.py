"""Streaming model answers into Discord messages: splitting, pacing and relaying edits."""
