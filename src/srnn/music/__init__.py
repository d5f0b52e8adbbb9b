"""Music input and output."""
