"""Bounds on log p(x) over the step interface."""

from srnn.bounds.elbo import ElboTerms, elbo_terms, sample_posterior

__all__ = ["ElboTerms", "elbo_terms", "sample_posterior"]
