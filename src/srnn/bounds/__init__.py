"""Bounds on log p(x) over the state-space step interface: ELBO, IWAE, FIVO; and the joint
log p(x, z) along the training path for a given z."""

from srnn.bounds.elbo import ElboTerms, PosteriorPass, elbo_terms, joint_log_prob, sample_posterior
from srnn.bounds.particles import ParticleBound, fivo, iwae, particle_bound

__all__ = ["ElboTerms", "ParticleBound", "PosteriorPass", "elbo_terms", "fivo", "iwae",
           "joint_log_prob", "particle_bound", "sample_posterior"]
