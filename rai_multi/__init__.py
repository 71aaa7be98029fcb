"""rai-multi: multilingual and responsible-AI evaluation of base and Flan-style language models."""

__version__ = "0.1.0"
