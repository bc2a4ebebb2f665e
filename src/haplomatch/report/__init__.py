"""Writing results for people: terminal tables, CSV, Markdown (and, later, HTML)."""
