"""Federated training that follows renewable-curtailment windows across sites (room for a later issue),
beside ``serve`` and above ``control``; nothing is implemented here yet."""
