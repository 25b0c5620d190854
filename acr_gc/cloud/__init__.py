"""Thin adapters over the vendor SDK clients: typed results, paging, retries, rate limit."""
