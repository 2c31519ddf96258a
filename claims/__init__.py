"""Claim families, one module each. Every ``harness.claim.Claim`` defined at module level here is registered
(``harness.claim.registry``); a claim module imports only from ``harness`` (never torch or jax)."""
