"""The service (room for a later issue): forecast API, metrics and dashboard. It sits above ``control``,
beside ``federated``; nothing is implemented here yet."""
