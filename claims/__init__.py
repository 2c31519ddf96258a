"""Claim families, one module each. Every ``harness.engine.claim.Claim`` defined at module level here is registered
(``harness.engine.claim.registry``); a claim module imports only from ``harness`` (never torch or jax)."""
