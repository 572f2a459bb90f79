"""Domain and event store. Imports nothing from `projections` or `api`, and no aiohttp."""
