"""Cost models of the engine: technology tables, energy per event, (later) cycles."""
