"""srnn: stochastic recurrent neural networks trained by variational inference.

Quick start::

    import srnn
    data = srnn.load_dataset("jsb")                  # or "bach", "jsb-fraccaro", ...
    model = srnn.SRNN(srnn.SRNNConfig(x_dim=data.dim))
    batch = srnn.pad_batch(data.train.x[:8], data.train.u[:8])
    terms = srnn.elbo_terms(model, batch)            # per-step recon and KL, (B, T)
    print(terms.per_step())                          # ELBO in nats per time step

    results = srnn.train("jsb", "runs/jsb", epochs=5)   # writes a run directory
"""

from srnn.bounds import ElboTerms, elbo_terms
from srnn.data import DATASETS, SequenceDataset, Split, load_dataset
from srnn.data.batching import pad_batch
from srnn.errors import CheckpointError, ConfigError, DataError, SRNNError
from srnn.evaluate import evaluate_elbo
from srnn.models import SRNN, Batch, SRNNConfig, build_model
from srnn.train.trainer import TrainConfig, load_model, load_trained, train

__version__ = "0.1.0"

__all__ = ["DATASETS", "SRNN", "Batch", "CheckpointError", "ConfigError", "DataError",
           "ElboTerms", "SRNNConfig", "SRNNError", "SequenceDataset", "Split", "TrainConfig",
           "build_model", "elbo_terms", "evaluate_elbo", "load_dataset", "load_model",
           "load_trained", "pad_batch", "train"]
