"""Pure scheduling logic: no sockets, no threads, no subprocesses, no wall clock (time is passed in)."""
