"""`make demo`: the whole loop, shown as a person would want to see it."""
