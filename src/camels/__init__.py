"""camels: open instruction datasets to an instruction-tuned model, measured benchmark by benchmark."""

__version__ = "0.1.0"
