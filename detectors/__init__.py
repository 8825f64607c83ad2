"""Vision plug-ins: the Detector protocol and its implementations."""
