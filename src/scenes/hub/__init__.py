"""A trained model as a folder for the Hugging Face Hub: weights, configs, a model card."""
