"""Replay a labelled data set through the pipeline and validate the verdicts."""
