"""Inbound and outbound transports; they publish through psop_hub.hub."""
