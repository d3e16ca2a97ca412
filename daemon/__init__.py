"""The gateway daemon: drivers → dedup → location and portal → store, MQTT, metrics, control."""
