"""HTTP layer: REST routes, health, metrics, error mapping. Top layer; nothing imports it."""
