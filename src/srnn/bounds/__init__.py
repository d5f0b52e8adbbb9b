"""Bounds on log p(x) over the state-space step interface: ELBO, IWAE, FIVO."""

from srnn.bounds.elbo import ElboTerms, elbo_terms, sample_posterior
from srnn.bounds.particles import ParticleBound, fivo, iwae, particle_bound

__all__ = ["ElboTerms", "ParticleBound", "elbo_terms", "fivo", "iwae", "particle_bound",
           "sample_posterior"]
