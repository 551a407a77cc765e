"""The online endpoint's server: a FastAPI app that scores rows with the deployed models."""
