"""rnnlab: vanilla RNN, LSTM and GRU side by side, with gradient diagnostics through time."""

__version__ = "0.1.0"
