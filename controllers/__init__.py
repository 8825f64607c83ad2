"""Signal-timing controllers and the safety envelope every plan must pass."""
