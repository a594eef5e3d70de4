"""The anomstream worker: consume, decode, score, produce, commit."""
