"""Job scripts for `titan demo`."""
