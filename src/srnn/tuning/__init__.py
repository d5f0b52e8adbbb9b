"""Fine-tuning a trained model for music generation (``srnn tune``)."""
